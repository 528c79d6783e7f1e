"""Fixtures: real grpc.aio servers on 127.0.0.1:0 over a real executor, and stubs."""

from __future__ import annotations  # the stubs' async types exist only in .pyi

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from beephost_pb.exec.v1 import exec_pb2_grpc
from tests.integration.rpc.support import (
    RpcBackend,
    RpcProcess,
    StartBackend,
    backends,
    start_rpc_process,
)


@pytest.fixture
async def start_backend(env_python: str) -> AsyncIterator[StartBackend]:
    async with backends(env_python) as start:
        yield start


@pytest.fixture
async def backend(start_backend: StartBackend) -> RpcBackend:
    return await start_backend()


@pytest.fixture
async def stub(backend: RpcBackend) -> exec_pb2_grpc.ExecutorAsyncStub:
    # Async: a grpc.aio channel takes the running loop. Made outside one, it asks for
    # the thread's current loop, which asyncio.run() in an earlier test unsets.
    return backend.stub()


@pytest.fixture
def rpc_process(short_tmp: Path, env_python: str) -> Iterator[RpcProcess]:
    process = start_rpc_process(short_tmp, env_python)
    yield process
    process.stop()
