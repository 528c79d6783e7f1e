"""Fixtures for tests against the real Docker engine: skip without one, fail under CI=true.

Also the session's backend images and hardened backend containers (tests/e2e/containers.py).
Registered once for the e2e and reliability tiers by tests/conftest.py.
"""

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest
from scripts.workspace_snapshot import snapshot_workspace

from beephost_client.controller import ControllerClient
from beephost_controller.engine.docker_images import DockerEngine
from beephost_controller.images.backend import BackendImage, ensure_backend_image
from beephost_controller.images.base import ensure_base_image
from beephost_controller.images.base_source import BaseImage
from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.inputs import BuildInputs
from beephost_controller.images.layout import default_cache_dir, find_workspace
from beephost_controller.images.uv_tools import UvTools
from beephost_controller.ports import ContainerEngineError
from beephost_controller.schemas import BACKEND_TYPES
from beephost_controller.settings import Settings
from tests.e2e.containers import (
    RunningBackend,
    memory_usage,
    remove_container,
    socket_directory,
    start_backend,
)
from tests.e2e.controller_process import (
    ControllerTarget,
    module_controller,
)

if TYPE_CHECKING:  # compose_system imports this module: imported where used
    from tests.e2e.compose_system import ComposeController


def unavailable(reason: str) -> NoReturn:
    """Skip the test, except under ``CI=true`` where a missing dependency is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: failing instead of skipping)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[DockerEngine]:
    """The project's ``DockerEngine`` on the engine from the environment."""
    try:
        engine = DockerEngine.from_env()
    except ContainerEngineError as exc:
        unavailable(f"no Docker engine: {exc}")
    yield engine
    engine.close()


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


# -- backend images and containers, shared by test_backend_images and
# -- test_contract_containers: built and started once per session -------------------

# Unique per test session: a concurrent session (another checkout, a helper) that
# builds newer backend images retires the older ones of its repository, never ours.
BACKENDS_REPOSITORY = f"beephost-test-{uuid.uuid4().hex[:8]}"


@dataclass
class BuiltBackends:
    """The base and backend images one session built, and what it took."""

    base: BaseImage
    images: dict[str, BackendImage]
    workspace: Path
    cache_dir: Path
    labels: dict[str, str]
    #: The engine they are in.
    engine: DockerEngine

    def inputs(
        self, prefix: str = BACKENDS_REPOSITORY, tools: UvTools | None = None
    ) -> BuildInputs:
        """What this session built from: its workspace, wheel cache and labels, with
        images under ``prefix``."""
        return BuildInputs(
            workspace=self.workspace,
            cache_dir=self.cache_dir,
            tools=tools or UvTools(),
            extra_labels=self.labels,
            repository_prefix=prefix,
        )

    def ensure(
        self, kind: str, prefix: str = BACKENDS_REPOSITORY, tools: UvTools | None = None
    ) -> BackendImage:
        """``ensure_backend_image`` of ``kind`` on this session's base image, with
        its ``inputs``; into ``<prefix>/<kind>-backend``."""
        return ensure_backend_image(
            kind, self.base, self.engine, self.inputs(prefix, tools)
        )


@pytest.fixture(scope="session")
def backend_run_labels() -> dict[str, str]:
    """A label unique to this session's backend images: the only cleanup handle."""
    return {"io.beephost.test.run": f"backend-images-{uuid.uuid4().hex[:12]}"}


@pytest.fixture(scope="session")
def backend_images(
    docker_client: DockerEngine,
    require_executable: Callable[[str, str], str],
    backend_run_labels: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BuiltBackends]:
    """The three backend images for 3.11, on a base image of a test repository.

    Builds from a snapshot of the workspace. The rootfs tarball and the wheel pool
    live in the user's caches (pure caches: nothing is ever deleted from them).
    """
    require_executable("mmdebstrap", "apt-get install mmdebstrap")
    try:
        tools = UvTools()
    except BackendImageError as exc:
        unavailable(str(exc))
    workspace = snapshot_workspace(
        find_workspace(Path(__file__).parent), tmp_path_factory.mktemp("ws") / "repo"
    )
    settings = Settings.model_validate(
        {
            "base_image_repository": f"{BACKENDS_REPOSITORY}/python",
            "base_image_registry": "",
            "base_image_digests": {},
            "rootfs_cache_dir": Path.home() / ".cache" / "beephost" / "rootfs",
            "debian_mirror": "http://deb.debian.org/debian",
        }
    )
    try:
        started = time.monotonic()
        base = ensure_base_image(
            "3.11", settings, runtime=docker_client, extra_labels=backend_run_labels
        )
        print(f"\nbase {base.tag}: {time.monotonic() - started:.1f} s")
        built = BuiltBackends(
            base=base,
            images={},
            workspace=workspace,
            cache_dir=default_cache_dir(),
            labels=backend_run_labels,
            engine=docker_client,
        )
        for kind in BACKEND_TYPES:
            image = built.images[kind] = built.ensure(kind, tools=tools)
            print(
                f"{kind}-backend {image.tag}: built={image.built} in "
                f"{image.seconds:.1f} s, {image.size / 1e6:.1f} MB"
            )
        yield built
    finally:
        removed = docker_client.remove_by_labels(backend_run_labels)
        print(f"\nremoved {len(removed)} backend test images")


@pytest.fixture(scope="session")
def backend_containers(
    backend_images: BuiltBackends, docker_cli: str
) -> Iterator[dict[str, RunningBackend]]:
    """One hardened, healthy container per backend: pipe through a bind-mounted socket
    directory, http and rpc through ports published on 127.0.0.1."""
    running: dict[str, RunningBackend] = {}
    with contextlib.ExitStack() as stack:
        try:
            for kind in BACKEND_TYPES:
                socket_dir = (
                    stack.enter_context(socket_directory()) if kind == "pipe" else None
                )
                running[kind] = start_backend(
                    docker_cli,
                    kind,
                    backend_images.images[kind].tag,
                    backend_images.labels,
                    socket_dir=socket_dir,
                )
                print(
                    f"\n{kind}-backend healthy {running[kind].healthy_after:.1f} s after "
                    f"start, idle memory {memory_usage(docker_cli, running[kind].container)}"
                )
            yield running
        finally:
            for backend in running.values():
                remove_container(docker_cli, backend.container)


# -- a real controller process, one per test module ------------------------------------


#: A ``beephost-controller`` process building into the session's test repositories;
#: afterwards every container and network carrying its name is gone.
controller = module_controller("controller")


@pytest.fixture(scope="module")
def controller_target(request: pytest.FixtureRequest) -> ControllerTarget:
    """The controller a test drives: the module's own process (``controller``) or,
    for a test marked ``ON_BOTH`` with ``compose``, the compose system's."""
    if getattr(request, "param", "local") == "compose":
        compose: ControllerTarget = request.getfixturevalue("compose_controller")
        return compose
    local: ControllerTarget = request.getfixturevalue("controller")
    return local


@pytest.fixture(scope="session")
def compose_controller(docker_cli: str) -> "Iterator[ComposeController]":
    """The controller of a compose system as ``scripts/up`` brings it up, shared by
    the session's ``ON_BOTH`` tests; ``down -v`` at the end."""
    from tests.e2e.compose_system import ComposeController, compose_system

    with compose_system("beephost-e2e-ctl") as compose:
        yield ComposeController(compose, docker_cli)


@pytest.fixture(scope="module")
def api(controller_target: ControllerTarget) -> Iterator[ControllerClient]:
    """A client of the test's controller (``controller_target``)."""
    with controller_target.client() as client:
        yield client
