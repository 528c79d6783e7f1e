"""Fixtures: a live controller per test, real pipe and HTTP backends per session."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cli.support import LiveController, live_controller
from tests.integration.contract.servers import TOKEN, ServerProcess, ServerSet


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages that name a temporary path stay on one line. Rich wraps at the
    console's width (80 columns without a terminal) and pytest's temporary paths grow
    with its run counter (pytest-of-root/pytest-9 -> pytest-10), so a phrase asserted
    in a wrapped message passed on a fresh machine and failed on a used one."""
    monkeypatch.setenv("COLUMNS", "400")


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
