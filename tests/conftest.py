"""Shared fixtures: the anyio backend, environment hygiene, a stdlib-only interpreter,
and the Docker tiers' session fixtures (tests/e2e/session_fixtures.py).

The e2e and reliability tiers run in one session and share the session's images,
containers and compose system: their fixtures are registered here, in the tiers' common
parent, once. A conftest in each would register its own definitions, each set up once
(the backend images were built twice)."""

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.e2e.session_fixtures import (  # noqa: F401 - registered as fixtures
    api,
    backend_containers,
    backend_images,
    backend_run_labels,
    compose_controller,
    controller,
    controller_target,
    docker_cli,
    docker_client,
    require_executable,
)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
async def _one_event_loop(anyio_backend: str) -> AsyncIterator[None]:
    """Hold anyio's runner for the session: every async test runs on one event loop.

    grpc.aio delivers a call's late completion (a cancelled stream, a closed channel)
    to the loop that started it; with a loop per test that loop may be closed by then
    and the next test fails with "Event loop is closed" (grpc/grpc#25364 and kin).
    """
    yield  # noqa: PT022 - the lease on the runner is what lasts until teardown


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def env_python() -> Iterator[str]:
    """An empty virtualenv's interpreter: what a fresh environment's worker sees."""
    base = getattr(sys, "_base_executable", sys.executable)
    root = Path(tempfile.mkdtemp(prefix="bh-env-"))
    subprocess.run([base, "-m", "venv", "--without-pip", str(root)], check=True)
    yield str(root / "bin" / "python")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory for Unix sockets (sun_path is 108 bytes; pytest's tmp_path is deep)."""
    path = Path(tempfile.mkdtemp(prefix="bh", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
