"""Fixtures: a live controller per test, real pipe and HTTP backends per session."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cli.support import LiveController, live_controller
from tests.integration.contract.servers import TOKEN, ServerProcess, ServerSet


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[LiveController]:
    with live_controller(tmp_path) as live:
        yield live


@pytest.fixture(scope="session")
def backends(env_python: str) -> Iterator[dict[str, ServerProcess]]:
    """A pipe and an HTTP backend that require ``TOKEN``, as `beep-host start` makes them."""
    servers = ServerSet(env_python)
    try:
        yield {kind: servers.start(kind, TOKEN) for kind in ("pipe", "http")}
    finally:
        servers.close()
