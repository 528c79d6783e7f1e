"""Fixtures: real pipe backend processes on real Unix sockets."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.pipe.support import (
    PipeClient,
    PipeServerProcess,
    StartServer,
    start_pipe_server,
    stop_pipe_server,
)
from tests.integration.starters import numbered_starts


@pytest.fixture
def start_server(short_tmp: Path, env_python: str) -> Iterator[StartServer]:
    with numbered_starts(
        short_tmp, env_python, start_pipe_server, stop_pipe_server
    ) as start:
        yield start


@pytest.fixture
def pipe_server(start_server: StartServer) -> PipeServerProcess:
    return start_server()


@pytest.fixture
def client(pipe_server: PipeServerProcess) -> PipeClient:
    return pipe_server.connect()
