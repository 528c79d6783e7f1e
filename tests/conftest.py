"""Shared fixtures: the anyio backend, environment hygiene, a stdlib-only interpreter."""

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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
