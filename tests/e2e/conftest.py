"""Fixtures for tests against the real Docker engine: skip without one, fail under CI=true."""

import os
import shutil
from collections.abc import Callable, Iterator
from typing import NoReturn

import pytest

from beephost_controller.runtime.base import ContainerRuntimeError
from beephost_controller.runtime.docker import DockerRuntime


def unavailable(reason: str) -> NoReturn:
    """Skip the test, except under ``CI=true`` where a missing dependency is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: failing instead of skipping)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[DockerRuntime]:
    """The project's ``DockerRuntime`` on the engine from the environment."""
    try:
        runtime = DockerRuntime.from_env()
    except ContainerRuntimeError as exc:
        unavailable(f"no Docker engine: {exc}")
    yield runtime
    runtime.close()


@pytest.fixture(scope="session")
def require_executable() -> Callable[[str, str], str]:
    """``require_executable(name, hint)``: the path of a host tool, or skip (fail in CI)."""

    def require(name: str, hint: str) -> str:
        path = shutil.which(name)
        if path is None:
            unavailable(f"{name} is not installed ({hint})")
        return path

    return require


@pytest.fixture(scope="session")
def docker_cli(require_executable: Callable[[str, str], str]) -> str:
    """Path of the docker CLI, for checks that must not go through our own adapter."""
    return require_executable("docker", "apt-get install docker.io")
