"""Fixtures: real pipe backend processes on real Unix sockets."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.pipe.support import (
    PipeClient,
    PipeServerProcess,
    StartServer,
    start_pipe_server,
    stop_pipe_server,
)


@pytest.fixture
def start_server(short_tmp: Path, env_python: str) -> Iterator[StartServer]:
    started: list[PipeServerProcess] = []

    def start(**settings: Any) -> PipeServerProcess:
        directory = short_tmp / str(len(started))
        directory.mkdir()
        server = start_pipe_server(directory, env_python, **settings)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_pipe_server(server)


@pytest.fixture
def pipe_server(start_server: StartServer) -> PipeServerProcess:
    return start_server()


@pytest.fixture
def client(pipe_server: PipeServerProcess) -> PipeClient:
    return pipe_server.connect()
