"""A controller without a container engine: state and API work, backends do not.

On Kubernetes without ``controller.docker.host`` (and anywhere neither ``DOCKER_HOST``
nor the Docker socket exists) the controller still serves runtimes, environments and
backend records; builds fail and backend starts answer ``unavailable`` with this reason.
"""

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from beephost_controller import ports
from beephost_controller.resolver import Lock
from beephost_controller.rows import BackendRow, EnvironmentRow
from beephost_controller.starts import BackendPlan, BackendRequest, Minted, ready_image
from beephost_protocol.errors import Unavailable

REASON = (
    "no container engine is configured: set DOCKER_HOST or mount the Docker socket "
    "(/var/run/docker.sock)"
)


def engine_configured(socket: Path = Path("/var/run/docker.sock")) -> bool:
    """Whether a Docker engine is configured (not whether it answers)."""
    return bool(os.environ.get("DOCKER_HOST")) or socket.exists()


class NoEngineBackends:
    """A ``BackendEngine`` with no sandbox to find and none it can make: every start
    answers ``unavailable`` with the reason (``REASON``, or why the configured engine
    could not be reached)."""

    def __init__(self, reason: str = REASON) -> None:
        self.reason = reason

    def plan(
        self,
        request: BackendRequest,
        environment: EnvironmentRow,
        minted: Minted,
        held_ports: Mapping[int, str],
    ) -> BackendPlan:
        ready_image(environment)  # a start on an environment not ready: that first
        raise Unavailable(f"could not start backend: {self.reason}")

    def release(self, planned: BackendPlan) -> None:
        pass  # plan refuses: nothing to release

    def launch(self, planned: BackendPlan, record: ports.Record) -> None:
        raise ports.LaunchFailed(Unavailable(self.reason), undone=True)

    def state(self, row: BackendRow) -> ports.ContainerState | None:
        return None

    def sweep(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def endpoint(self, row: BackendRow, state: ports.ContainerState) -> str | None:
        return None

    def probe_endpoint(self, row: BackendRow) -> str:
        raise ports.ContainerEngineError(self.reason)

    def memory_used(self, row: BackendRow) -> int | None:
        return None  # no sandbox runs

    def service(self, container: str) -> ports.ServiceState | None:
        return None

    def restart(self, row: BackendRow) -> None:
        raise ports.ContainerEngineError(self.reason)

    def remove(self, row: BackendRow) -> None:
        return None  # nothing can have been made

    def logs(self, row: BackendRow, tail: int) -> str:
        raise ports.ContainerEngineError(self.reason)

    def copy_in(self, row: BackendRow, path: str, data: bytes) -> None:
        raise ports.ContainerEngineError(self.reason)

    def exec_in(
        self, row: BackendRow, command: Sequence[str], user: str, timeout: float
    ) -> tuple[int, str]:
        raise ports.ContainerEngineError(self.reason)

    def sandboxes(self) -> list[ports.Sandbox]:
        return []

    def tidy(self, live: Iterable[BackendRow], used_images: Iterable[str]) -> int:
        return 0

    def image_disk_use(self) -> dict[str, int]:
        return {}

    def release_images(self, used: Iterable[str]) -> None:
        return None

    def settle(self, timeout: float) -> bool:
        return True

    def remove_shared(self) -> None:
        return None

    def egress_refusals(self, row: BackendRow) -> list[ports.EgressRefusal]:
        return []

    def egress_counts(self) -> dict[str, int]:
        return {}

    def relay_counts(self) -> dict[str, int]:
        return {}

    def prepare_egress(self, log: Callable[[str], None]) -> None:
        del log


class NoEngineBuilder:
    """An ``ImageBuilder`` whose every build fails with the reason."""

    code_version = "no-engine"

    def ensure_base(
        self, python: str, log: Callable[[str], None]
    ) -> ports.BaseImageRef:
        raise RuntimeError(REASON)

    def environment_images(self) -> list[ports.ImageInfo]:
        return []  # none can have been built

    def remove_environment_image(self, image: ports.ImageInfo) -> None:
        raise ports.ContainerEngineError(REASON)

    def ensure_environment(
        self, *, base: ports.BaseImageRef, lock: Lock, admin: bool, log: ports.BuildLog
    ) -> str:
        raise RuntimeError(REASON)

    def ensure_egress_proxy(self, log: Callable[[str], None]) -> str:
        raise RuntimeError(REASON)


class NoEnginePublisher:
    """An ``ImagePublisher`` without a Docker engine: nothing to push from."""

    def publish(self, ref: str, repository: str) -> str:
        raise ports.ContainerEngineError(f"cannot push {ref} to {repository}: {REASON}")
