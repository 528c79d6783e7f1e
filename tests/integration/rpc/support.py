"""Helpers to run the gRPC backend (in-process or as a process) and call it with the stubs."""

from __future__ import annotations  # the stubs' async types exist only in .pyi

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from beephost_core import CoreMetrics, Executor
from beephost_pb.exec.v1 import exec_pb2_grpc
from beephost_protocol import pb_codec
from beephost_protocol.errors import BeepHostError
from beephost_rpc_backend.server import RpcServer, create_server
from beephost_rpc_backend.settings import Settings
from tests.ports import free_port

START_TIMEOUT = 20.0
CALL_TIMEOUT = 15.0  # the deadline of every call that names none: nothing waits forever
TOKEN = "s3cret-T0ken"

Metadata = tuple[tuple[str, str], ...]


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class RpcBackend:
    """An in-process server with its executor, and channels to it."""

    server: RpcServer
    executor: Executor
    port: int
    settings: Settings
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self, **options: Any) -> grpc.aio.Channel:
        channel = grpc.aio.insecure_channel(self.target, options=list(options.items()))
        self.channels.append(channel)
        return channel

    def stub(self, **options: Any) -> exec_pb2_grpc.ExecutorAsyncStub:
        return exec_pb2_grpc.ExecutorStub(self.channel(**options))

    async def start_executor(self) -> None:
        await self.executor.start()
        await self.server.ready()

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close(None)
        await self.server.shutdown(0)
        await self.executor.aclose()


StartBackend = Callable[..., Awaitable[RpcBackend]]


@contextlib.asynccontextmanager
async def backends(python: str) -> AsyncIterator[StartBackend]:
    """Yield a starter of in-process backends; all of them stop at exit."""
    started: list[RpcBackend] = []

    async def start(*, ready: bool = True, **overrides: Any) -> RpcBackend:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "metrics_port": 0,
            "python": python,
            "kill_grace": 0.5,
            "environment": "test-env",
            "drain_timeout": 0.0,
            **overrides,
        }
        settings = Settings(**values)
        executor = Executor(settings.executor_config(), CoreMetrics("grpc"))
        server, port = create_server(settings, executor)
        backend = RpcBackend(server, executor, port, settings)
        started.append(backend)
        await server.start()
        if ready:
            await backend.start_executor()
        return backend

    try:
        yield start
    finally:
        for backend in started:
            await backend.close()


async def rpc_error(
    call: Awaitable[Any],
) -> tuple[grpc.StatusCode, BeepHostError | None]:
    """Await a call that must fail; return its status and the decoded beephost-error."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    return error.code(), pb_codec.error_from_metadata(error.trailing_metadata())


# -- the backend as a process ---------------------------------------------------------------


@dataclass
class RpcProcess:
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    log: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
        return lines

    def peak_rss(self) -> int:
        """The server's peak resident set size so far (VmHWM), in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def rpc_env(python: str, **settings: Any) -> dict[str, str]:
    env = {
        **os.environ,
        "BEEPHOST_RPC_BACKEND_HOST": "127.0.0.1",
        "BEEPHOST_RPC_BACKEND_PORT": "0",
        "BEEPHOST_RPC_BACKEND_PYTHON": python,
        "BEEPHOST_RPC_BACKEND_KILL_GRACE": "0.5",
        "BEEPHOST_RPC_BACKEND_ENVIRONMENT": "test-env",
    }
    env.update(
        {f"BEEPHOST_RPC_BACKEND_{k.upper()}": str(v) for k, v in settings.items()}
    )
    return env


def spawn_rpc_process(directory: Path, python: str, **settings: Any) -> RpcProcess:
    """Run `python -m beephost_rpc_backend` without waiting for it (port 0: unknown)."""
    metrics_port = int(settings.pop("metrics_port", free_port()))
    log = directory / "server.log"
    with log.open("wb") as out:  # the child keeps its own copy
        process = subprocess.Popen(
            [sys.executable, "-m", "beephost_rpc_backend"],
            env=rpc_env(python, metrics_port=metrics_port, **settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return RpcProcess(process, 0, metrics_port, log)


def start_rpc_process(directory: Path, python: str, **settings: Any) -> RpcProcess:
    """Run `python -m beephost_rpc_backend` on a free port and wait until it listens."""
    spawned = spawn_rpc_process(directory, python, **settings)
    process, metrics_port, log = spawned.process, spawned.metrics_port, spawned.log
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()}")
        for line in spawned.log_lines():
            if str(line.get("msg", "")).startswith("listening on "):
                port = int(line["msg"].rsplit(":", 1)[1])
                return RpcProcess(process, port, metrics_port, log)
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise AssertionError(f"rpc backend did not start listening: {log.read_text()}")
