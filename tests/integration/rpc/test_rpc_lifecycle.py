"""Health, reflection, the healthcheck command, metrics and SIGTERM, on real servers."""

from __future__ import annotations  # the stubs' async types exist only in .pyi

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from beephost_pb.exec.v1 import exec_pb2 as pb
from beephost_pb.exec.v1 import exec_pb2_grpc
from beephost_protocol import pb_codec
from beephost_protocol.errors import Unavailable
from tests.integration.rpc.support import (
    CALL_TIMEOUT as T,
)
from tests.integration.rpc.support import (
    TOKEN,
    RpcBackend,
    StartBackend,
    bearer,
    rpc_env,
    spawn_rpc_process,
    start_rpc_process,
)
from tests.ports import free_port

SERVICE = "beephost.exec.v1.Executor"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def health(backend: RpcBackend, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(backend.channel())
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=T)
    status: int = reply.status
    return status


async def wait_for_health(
    backend: RpcBackend, status: int, within: float = 5.0
) -> None:
    deadline = time.monotonic() + within
    while (current := await health(backend)) != status:
        assert time.monotonic() < deadline, f"health stayed {current}"
        await asyncio.sleep(0.1)


# -- standard health --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_health_is_not_serving_until_the_executor_is_ready(
    start_backend: StartBackend,
) -> None:
    backend = await start_backend(ready=False)
    assert await health(backend) == NOT_SERVING
    assert await health(backend, SERVICE) == NOT_SERVING
    await backend.start_executor()
    assert await health(backend) == SERVING
    assert await health(backend, SERVICE) == SERVING
    stub = health_pb2_grpc.HealthStub(backend.channel())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=T)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.anyio
async def test_health_is_not_serving_during_the_drain(
    start_backend: StartBackend,
) -> None:
    backend = await start_backend()
    stub = backend.stub()
    running = asyncio.ensure_future(
        stub.Execute(pb.ExecuteRequest(code="import time\ntime.sleep(1)"), timeout=T)
    )
    await asyncio.sleep(0.2)
    shutdown = asyncio.ensure_future(backend.server.shutdown(5.0))
    await asyncio.sleep(0.1)
    assert await health(backend) == NOT_SERVING
    assert await health(backend, SERVICE) == NOT_SERVING
    await asyncio.wait_for(running, T)  # finished within the drain
    await asyncio.wait_for(shutdown, T)


@pytest.mark.anyio
async def test_health_follows_the_default_worker(backend: RpcBackend) -> None:
    stub = backend.stub()
    info = await stub.GetSessionInfo(pb.SessionRef(), timeout=T)
    os.kill(info.pid, signal.SIGKILL)
    # The core replaces a dead idle default worker at once, so health stays (or comes
    # back to) SERVING; the next request still reports the loss, once.
    await asyncio.sleep(1.0)
    await wait_for_health(backend, SERVING)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Evaluate(pb.EvaluateRequest(expression="1"), timeout=T)
    assert caught.value.code() == grpc.StatusCode.ABORTED
    fresh = await stub.GetSessionInfo(pb.SessionRef(), timeout=T)
    assert fresh.pid != info.pid


@pytest.mark.anyio
async def test_health_and_reflection_need_no_token(start_backend: StartBackend) -> None:
    backend = await start_backend(token=TOKEN)
    assert await health(backend) == SERVING
    services = await asyncio.to_thread(reflected_services, backend.target)
    assert SERVICE in services


# -- reflection -------------------------------------------------------------------------------


def reflected_services(target: str) -> list[str]:
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services: list[str] = list(database.get_services())
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName(SERVICE)
        methods = {
            m.name: (m.input_type.name, m.output_type.name) for m in service.methods
        }
        assert methods["Evaluate"] == ("EvaluateRequest", "ValueReply")
        assert methods["ExecuteStream"] == ("ExecuteRequest", "ExecuteEvent")
        assert len(methods) == len(pb.DESCRIPTOR.services_by_name["Executor"].methods)
        return services


@pytest.mark.anyio
async def test_reflection_lists_and_describes_the_service(backend: RpcBackend) -> None:
    services = await asyncio.to_thread(reflected_services, backend.target)
    assert set(services) >= {
        SERVICE,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


# -- the healthcheck command ------------------------------------------------------------------


async def healthcheck(port: int) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "beephost_rpc_backend",
        "healthcheck",
        env=rpc_env(sys.executable, port=port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, output.decode().strip()


@pytest.mark.anyio
async def test_healthcheck_command_exit_codes(start_backend: StartBackend) -> None:
    backend = await start_backend(ready=False)
    assert await healthcheck(backend.port) == (1, "NOT_SERVING")
    await backend.start_executor()
    assert await healthcheck(backend.port) == (0, "SERVING")
    code, output = await healthcheck(free_port())
    assert code == 1
    assert output.startswith("UNAVAILABLE: ConnectionRefusedError")


# -- the process: metrics, SIGTERM drain, startup failure -------------------------------------


def test_process_serves_metrics_and_drains_on_sigterm(
    short_tmp: Path, env_python: str
) -> None:
    server = start_rpc_process(short_tmp, env_python, token=TOKEN, drain_timeout=5)
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = exec_pb2_grpc.ExecutorStub(channel)
            check = health_pb2_grpc.HealthStub(channel)
            reply = check.Check(
                health_pb2.HealthCheckRequest(), timeout=T, wait_for_ready=True
            )
            deadline = time.monotonic() + T
            while reply.status != SERVING and time.monotonic() < deadline:
                time.sleep(0.05)
                reply = check.Check(health_pb2.HealthCheckRequest(), timeout=T)
            assert reply.status == SERVING
            answer = stub.Evaluate(
                pb.EvaluateRequest(expression="6 * 7"),
                metadata=bearer(TOKEN),
                timeout=T,
            )
            assert json.loads(answer.value_json) == 42
            with pytest.raises(grpc.RpcError):
                stub.Evaluate(pb.EvaluateRequest(expression="1"), timeout=T)
            metrics = scrape(server.metrics_port)
            assert (
                'beephost_requests_total{command="eval",outcome="ok",transport="grpc"} 1.0'
                in metrics
            )
            assert (
                'beephost_grpc_rejected_requests_total{code="unauthorized"} 1.0'
                in metrics
            )

            # SIGTERM during a call: the call finishes, later ones are refused, exit 0.
            results: dict[str, Any] = {}

            def slow_call() -> None:
                try:
                    results["reply"] = stub.Execute(
                        pb.ExecuteRequest(code="import time\ntime.sleep(1)\n'done'"),
                        metadata=bearer(TOKEN),
                        timeout=T,
                    )
                except grpc.RpcError as exc:
                    results["error"] = exc

            caller = threading.Thread(target=slow_call)
            caller.start()
            time.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Evaluate(
                    pb.EvaluateRequest(expression="1"),
                    metadata=bearer(TOKEN),
                    timeout=T,
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            error = pb_codec.error_from_metadata(caught.value.trailing_metadata())
            assert isinstance(error, Unavailable)
            caller.join(T)
            assert "error" not in results, results
            assert json.loads(results["reply"].value_json) == "done"
        assert server.process.wait(timeout=T) == 0
        messages = [line["msg"] for line in server.log_lines()]
        assert "stopped" in messages
        refused = "refused /beephost.exec.v1.Executor/Evaluate from peer "
        assert any(m.startswith(refused) for m in messages), messages
    finally:
        server.stop()


def scrape(port: int) -> str:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}/metrics", timeout=T
    ) as response:
        text: str = response.read().decode()
        return text


def test_process_exits_1_when_the_environment_cannot_start(short_tmp: Path) -> None:
    # Not start_rpc_process: the server may exit before its "listening" line is read.
    server = spawn_rpc_process(short_tmp, "/nonexistent/python", metrics_port=0)
    assert server.process.wait(timeout=T) == 1
    messages = [line["msg"] for line in server.log_lines()]
    assert any(m.startswith("cannot start the executor") for m in messages), messages


def test_process_exits_1_when_the_port_is_taken(
    short_tmp: Path, env_python: str
) -> None:
    first = start_rpc_process(short_tmp, env_python, metrics_port=0)
    try:
        second_dir = short_tmp / "second"
        second_dir.mkdir()
        with pytest.raises(AssertionError, match=r"cannot listen on 127\.0\.0\.1"):
            start_rpc_process(second_dir, env_python, port=first.port, metrics_port=0)
    finally:
        first.stop()


def test_a_backend_told_its_workspace_serves_with_the_worker_it_started_first(
    short_tmp: Path, env_python: str
) -> None:
    workspace = short_tmp / "workspace"
    workspace.mkdir()
    server = start_rpc_process(
        short_tmp, env_python, metrics_port=0, token=TOKEN, workspace_dir=workspace
    )
    try:
        with grpc.insecure_channel(server.target) as channel:
            _wait_serving(health_pb2_grpc.HealthStub(channel))
            answer = exec_pb2_grpc.ExecutorStub(channel).Evaluate(
                pb.EvaluateRequest(expression="__import__('os').getpid()"),
                metadata=bearer(TOKEN),
                timeout=T,
                wait_for_ready=True,
            )
    finally:
        server.stop()
    pid = json.loads(answer.value_json)
    early = f"the default session's worker (pid {pid}) was started early"
    messages = [line["msg"] for line in server.log_lines()]
    assert early in messages, messages


def _wait_serving(check: health_pb2_grpc.HealthStub) -> None:
    """Until health says SERVING (the executor is up): calls before get unavailable."""
    deadline = time.monotonic() + T
    request = health_pb2.HealthCheckRequest()
    while check.Check(request, timeout=T, wait_for_ready=True).status != SERVING:
        assert time.monotonic() < deadline, "the backend never became ready"
        time.sleep(0.05)
