"""Reflection as grpc.reflection.v1 (what current tools ask first) and v1alpha."""

from __future__ import annotations  # the stubs' async types exist only in .pyi

import subprocess
import sys

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2 as messages

from tests.integration.rpc.support import TOKEN, RpcBackend, StartBackend

pytestmark = pytest.mark.anyio

SERVICE = "beephost.exec.v1.Executor"
VERSIONS = ("grpc.reflection.v1", "grpc.reflection.v1alpha")
T = 10.0


async def _ask(
    backend: RpcBackend, version: str, request: messages.ServerReflectionRequest
) -> messages.ServerReflectionResponse:
    call = backend.channel().stream_stream(
        f"/{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=messages.ServerReflectionRequest.SerializeToString,
        response_deserializer=messages.ServerReflectionResponse.FromString,
    )
    replies = [reply async for reply in call(iter([request]), timeout=T)]
    assert len(replies) == 1
    return replies[0]


def _files(
    reply: messages.ServerReflectionResponse,
) -> list[descriptor_pb2.FileDescriptorProto]:
    files = []
    for raw in reply.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto()
        proto.ParseFromString(raw)
        files.append(proto)
    return files


@pytest.mark.parametrize("version", VERSIONS)
async def test_both_versions_list_and_describe_every_service(
    start_backend: StartBackend, version: str
) -> None:
    backend = await start_backend(token=TOKEN)  # reflection needs no token
    listed = await _ask(
        backend, version, messages.ServerReflectionRequest(list_services="")
    )
    names = {s.name for s in listed.list_services_response.service}
    assert names == {
        SERVICE,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    for name in names:
        reply = await _ask(
            backend,
            version,
            messages.ServerReflectionRequest(file_containing_symbol=name),
        )
        assert not reply.HasField("error_response"), (name, reply.error_response)
        package, _, service = name.rpartition(".")
        described = [f for f in _files(reply) if f.package == package]
        assert described, name
        assert service in {s.name for f in described for s in f.service}


async def test_v1_describes_itself_in_its_own_package(backend: RpcBackend) -> None:
    reply = await _ask(
        backend,
        "grpc.reflection.v1",
        messages.ServerReflectionRequest(
            file_containing_symbol="grpc.reflection.v1.ServerReflectionRequest"
        ),
    )
    (proto,) = _files(reply)
    assert proto.name == "grpc/reflection/v1/reflection.proto"
    method = proto.service[0].method[0]
    assert method.input_type == ".grpc.reflection.v1.ServerReflectionRequest"
    assert method.output_type == ".grpc.reflection.v1.ServerReflectionResponse"


async def test_an_unknown_reflection_version_is_unimplemented(
    backend: RpcBackend,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _ask(
            backend,
            "grpc.reflection.v2",
            messages.ServerReflectionRequest(list_services=""),
        )
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


# A fresh interpreter: this one has imported the reflection modules for the tests above.
_IMPORTED_AT_FIRST_CALL = """
import asyncio, sys
from beephost_core import CoreMetrics, Executor
from google.protobuf import descriptor_pool
from beephost_rpc_backend import health, reflection
from beephost_rpc_backend.server import RpcServer
from beephost_rpc_backend.settings import Settings

HEAVY = (
    "grpc_reflection.v1alpha.reflection",
    "google.protobuf.descriptor_pb2",
    "grpc_health.v1.health_pb2",
)

class Call:
    method = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"

async def main():
    settings = Settings(port=0)
    RpcServer(settings, Executor(settings.executor_config(), CoreMetrics("grpc")))
    print(sorted(m for m in HEAVY if m in sys.modules))
    names = ("beephost.exec.v1.Executor", health.SERVICE_NAME)
    lazy = reflection.LazyReflection(names, (health.MESSAGES_MODULE,))
    handler = lazy.service(Call())
    print(handler is not None, sorted(m for m in HEAVY if m in sys.modules))
    # The services it lists are described, health's too (loaded with reflection).
    for name in names:
        descriptor_pool.Default().FindServiceByName(name)

asyncio.run(main())
"""


def test_reflection_is_imported_at_its_first_call() -> None:
    # What an idle backend would otherwise hold for a tool that may never ask; the
    # health service's messages, which a cold start does without, come with it.
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTED_AT_FIRST_CALL],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    before, after = done.stdout.splitlines()
    assert before == "[]"
    assert after == (
        "True ['google.protobuf.descriptor_pb2', 'grpc_health.v1.health_pb2', "
        "'grpc_reflection.v1alpha.reflection']"
    )
