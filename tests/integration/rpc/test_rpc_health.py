"""The standard health service (health.py) on a real grpc.aio server: loaded at its
first call, it answers the statuses set before it as grpc_health's servicer does."""

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from beephost_rpc_backend import health
from beephost_rpc_backend.health import NOT_SERVING, SERVING, LazyHealth

T = 10.0


@pytest.fixture
async def served() -> AsyncIterator[tuple[LazyHealth, health_pb2_grpc.HealthStub]]:
    service = LazyHealth()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((service,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield service, health_pb2_grpc.HealthStub(channel)
    finally:
        await server.stop(0)


async def _check(stub: health_pb2_grpc.HealthStub, service: str = "") -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    reply = await stub.Check(request, timeout=T)
    return int(reply.status)


def test_the_statuses_are_the_protocols() -> None:
    assert SERVING == health_pb2.HealthCheckResponse.SERVING
    assert NOT_SERVING == health_pb2.HealthCheckResponse.NOT_SERVING
    described = health_pb2.DESCRIPTOR.services_by_name["Health"]
    assert described.full_name == health.SERVICE_NAME


async def test_statuses_set_before_the_first_call_are_answered_then_followed(
    served: tuple[LazyHealth, health_pb2_grpc.HealthStub],
) -> None:
    service, stub = served
    await service.set("", NOT_SERVING)
    await service.set("beephost.exec.v1.Executor", SERVING)
    assert await _check(stub) == NOT_SERVING
    assert await _check(stub, "beephost.exec.v1.Executor") == SERVING
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await _check(stub, "no.Such")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    # After the hand-over, sets reach grpc_health's servicer: a watcher sees them.
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=T)
    first = await watch.read()
    assert first.status == NOT_SERVING
    await service.set("", SERVING)
    second = await watch.read()
    assert second.status == SERVING
    watch.cancel()
    assert await _check(stub) == SERVING


async def test_a_shutdown_before_the_first_call_is_not_serving_for_good(
    served: tuple[LazyHealth, health_pb2_grpc.HealthStub],
) -> None:
    service, stub = served
    await service.set("beephost.exec.v1.Executor", SERVING)
    await service.enter_graceful_shutdown()
    await service.set("", SERVING)  # ignored from now on
    assert await _check(stub) == NOT_SERVING
    assert await _check(stub, "beephost.exec.v1.Executor") == NOT_SERVING
    await service.set("beephost.exec.v1.Executor", SERVING)
    assert await _check(stub, "beephost.exec.v1.Executor") == NOT_SERVING


async def test_a_new_service_is_serving_and_list_is_unimplemented(
    served: tuple[LazyHealth, health_pb2_grpc.HealthStub],
) -> None:
    _, stub = served
    assert await _check(stub) == SERVING, "grpc_health's servicer starts so"
    with pytest.raises(grpc.aio.AioRpcError) as listed:
        await stub.List(health_pb2.HealthListRequest(), timeout=T)
    assert listed.value.code() == grpc.StatusCode.UNIMPLEMENTED
