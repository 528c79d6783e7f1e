"""Fixtures: real HTTP backends (uvicorn in a thread, or the CLI in a process)."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.http.support import (
    Client,
    ProcessServer,
    ThreadServer,
    settings_for,
)
from tests.integration.starters import numbered_starts

TOKEN = "t0ken-for-tests-0123456789"

StartServer = Callable[..., ThreadServer]
StartProcess = Callable[..., ProcessServer]


@pytest.fixture(scope="module")
def shared_server(env_python: str) -> Iterator[ThreadServer]:
    """One server per module, default limits: tests use their own sessions and names."""
    server = ThreadServer(settings_for(env_python)).start()
    yield server
    server.stop()


@pytest.fixture
def client(shared_server: ThreadServer) -> Client:
    return shared_server.client()


@pytest.fixture
def start_server(env_python: str) -> Iterator[StartServer]:
    started: list[ThreadServer] = []

    def start(**overrides: Any) -> ThreadServer:
        server = ThreadServer(settings_for(env_python, **overrides)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def start_process(env_python: str, tmp_path: Path) -> Iterator[StartProcess]:
    with numbered_starts(
        tmp_path, env_python, ProcessServer, ProcessServer.stop
    ) as start:
        yield start
