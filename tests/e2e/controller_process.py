"""A real ``beephost-controller`` process on the real engine, for e2e tests.

It builds into the session's test repositories with the session's run label (so the
session fixtures' cleanup by label removes its images), and names its containers and networks
with a controller name unique to the test run: ``remove_owned`` removes exactly those.
"""

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest
from scripts.local_controller import LocalController

from beephost_client.controller import Backend, ControllerClient
from tests.e2e.containers import docker
from tests.e2e.processes import run_captured
from tests.ports import free_port

if TYPE_CHECKING:  # session_fixtures imports this module: a runtime import is a cycle
    from tests.e2e.session_fixtures import BuiltBackends

CONTROLLER_LABEL = "io.beephost.controller"


@dataclass
class ControllerProcess(LocalController):
    """One controller building into the session's test repositories with its labels,
    naming what it creates ``name``."""

    workspace: Path
    labels: Mapping[str, str]
    repository: str
    docker_cli: str
    name: str = field(default_factory=lambda: f"e2e-{uuid.uuid4().hex[:10]}")

    def defaults(self) -> dict[str, str]:
        return {
            **super().defaults(),
            "NAME": self.name,
            "PYTHONS": '["3.11"]',
            "ENVIRONMENT_REPOSITORY": f"{self.repository}/env",
            "BASE_IMAGE_REPOSITORY": f"{self.repository}/python",
            "BACKEND_IMAGE_PREFIX": self.repository,
            "WORKSPACE": str(self.workspace),
            "LABELS": json.dumps(dict(self.labels)),
            "SUPERVISE_INTERVAL": "0.5",
        }

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def client(self, timeout: float = 30.0) -> ControllerClient:
        return ControllerClient(self.url, timeout=timeout)

    @property
    def offline_network(self) -> str:
        """The network its http and rpc backends without network share."""
        return f"beephost-{self.name}-offline"

    def owned(self, kind: str = "container") -> list[str]:
        """Ids of the containers (names of the networks or volumes) carrying this
        controller's label."""
        return owned_by(self.docker_cli, self.name, kind)

    def remove_owned(self) -> None:
        for container in self.owned():
            docker(self.docker_cli, "rm", "-f", "-v", container, check=False)
        for network in self.owned("network"):
            docker(self.docker_cli, "network", "rm", network, check=False)
        for volume in self.owned("volume"):
            docker(self.docker_cli, "volume", "rm", "-f", volume, check=False)


def owned_by(docker_cli: str, name: str, kind: str = "container") -> list[str]:
    """Ids of the containers (``backend``: of backends only, not their relays;
    ``sandbox``: all but the relays made ahead that no start took yet; names of the
    networks or volumes) carrying the label of the controller named ``name``."""
    owner = f"label={CONTROLLER_LABEL}={name}"
    if kind == "sandbox":
        # One listing: a relay made ahead meanwhile is never counted as made.
        labels = "|".join(
            f'{{{{.Label "io.beephost.{label}"}}}}'
            for label in ("relay-ahead", "relay-for", "backend")
        )
        out = docker(
            docker_cli,
            "ps",
            "-a",
            "--format",
            f"{{{{.ID}}}}|{labels}",
            "--filter",
            owner,
        )
        rows = [line.split("|") for line in out.splitlines() if line.strip()]
        backends = {backend for *_, backend in rows}
        return [
            cid
            for cid, ahead, waits_for, _ in rows
            if not ahead or waits_for in backends
        ]
    if kind == "backend":
        # A relay carries the relay-for label (and its image's io.beephost.backend).
        relay = '{{.Label "io.beephost.relay-for"}}'
        out = docker(
            docker_cli,
            "ps",
            "-a",
            "--format",
            f"{{{{.ID}}}} {relay}",
            "--filter",
            owner,
        )
        return [line.split()[0] for line in out.splitlines() if len(line.split()) == 1]
    args = (
        ["ps", "-aq"] if kind == "container" else [kind, "ls", "--format", "{{.Name}}"]
    )
    return docker(docker_cli, *args, "--filter", owner).split()


class ControllerTarget(Protocol):
    """A controller e2e tests drive: their own process, or the compose system's."""

    @property
    def name(self) -> str: ...

    @property
    def url(self) -> str: ...

    def environ(self) -> dict[str, str]: ...

    def client(self, timeout: float = 30.0) -> ControllerClient: ...

    def owned(self, kind: str = "container") -> list[str]: ...

    def kill(self) -> None: ...

    def start(self) -> None: ...


#: Parametrize a test over both controllers: ``@ON_BOTH`` (the ``target`` fixture).
ON_BOTH = pytest.mark.parametrize(
    "controller_target", ["local", "compose"], indirect=True
)


def module_controller(
    workdir_prefix: str,
    settings: Mapping[str, str] | None = None,
    *,
    kind: type[ControllerProcess] = ControllerProcess,
    name: str = "controller",
) -> Callable[..., Iterator[ControllerProcess]]:
    """A module-scoped fixture ``name``: a controller building into the session's test
    repositories, started; afterwards stopped, and every container and network
    carrying its name gone. A module (or a conftest) assigns it to that name:
    ``controller`` replaces the session's (tests/conftest.py), another name runs beside it.

    Args:
        workdir_prefix: The prefix of its fresh directory (database, sockets, log).
        settings: Its settings over the e2e defaults (``ControllerProcess.settings``).
        kind: ``ControllerProcess`` or a subclass that changes more than settings.
        name: The fixture's name: the name the module assigns it to.
    """

    def controller(
        backend_images: "BuiltBackends",
        docker_cli: str,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Iterator[ControllerProcess]:
        # Imported here: session_fixtures imports this module.
        from tests.e2e.session_fixtures import BACKENDS_REPOSITORY

        proc = kind(
            workdir=tmp_path_factory.mktemp(workdir_prefix),
            port=free_port(),
            workspace=backend_images.workspace,
            labels=backend_images.labels,
            repository=BACKENDS_REPOSITORY,
            docker_cli=docker_cli,
            settings=settings or {},
        )
        try:
            proc.start()
            yield proc
        finally:
            proc.stop()
            proc.remove_owned()
            assert proc.owned() == [], "containers left after cleanup"

    # What `pytest --fixtures` shows for it.
    controller.__doc__ = (
        f"A running {kind.__name__}, one per module; afterwards stopped, and every "
        "container and network carrying its name gone."
    )
    return pytest.fixture(scope="module", name=name)(controller)


def beep_host(
    controller: ControllerTarget,
    *args: str,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The ``beep-host`` CLI against ``controller``, in its environment plus ``env``,
    on a 200-column terminal (so no line of its output wraps)."""
    environ = controller.environ() | (env or {})
    environ["COLUMNS"] = "200"
    return run_captured(
        [sys.executable, "-m", "beephost_cli", "--controller", controller.url, *args],
        timeout=timeout,
        env=environ,
    )


def build_environment(
    api: ControllerClient, name: str, requirements: list[str], timeout: float
) -> str:
    """Create environment ``name`` (or find it, from an earlier setup of the module's
    fixtures on the same controller) and wait up to ``timeout`` s for its build to
    succeed."""
    env = api.ensure_environment(name, requirements=requirements)
    if env.job_id is not None:
        job = api.wait_job(env.job_id, timeout=timeout)
        assert job.succeeded, job.error
    assert api.environment(name).status == "ready"
    return name


@contextmanager
def stopped_after(api: ControllerClient, *backends: Backend) -> Iterator[None]:
    """Stops ``backends`` when the block ends, however it ends."""
    try:
        yield
    finally:
        for backend in backends:
            api.stop_backend(backend.id)


def wait_restarted(
    api: ControllerClient, backend_id: str, restarts: int = 1, timeout: float = 60.0
) -> Backend:
    """The backend once it is ready again after at least ``restarts`` restarts; fails
    after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        now = api.backend(backend_id)
        if now.status == "ready" and now.restarts >= restarts:
            return now
        assert time.monotonic() < deadline, f"not restarted: {now}"
        time.sleep(0.1)
