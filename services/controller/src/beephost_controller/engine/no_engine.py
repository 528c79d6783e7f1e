"""A controller without a container engine: state and API work, containers do not.

On Kubernetes without ``controller.docker.host`` (and anywhere neither ``DOCKER_HOST``
nor the Docker socket exists) the controller still serves runtimes, environments and
backend records; builds fail and backend starts answer ``unavailable`` with this reason.
"""

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from beephost_controller import ports, specs
from beephost_controller.resolver import Lock

REASON = (
    "no container engine is configured: set DOCKER_HOST or mount the Docker socket "
    "(/var/run/docker.sock)"
)


def engine_configured(socket: Path = Path("/var/run/docker.sock")) -> bool:
    """Whether a Docker engine is configured (not whether it answers)."""
    return bool(os.environ.get("DOCKER_HOST")) or socket.exists()


class NoEngineContainers:
    """``BackendContainers`` with nothing to list and nothing it can create."""

    def ensure_network(self, name: str, labels: Mapping[str, str]) -> None:
        raise ports.ContainerEngineError(REASON)

    def remove_network(self, name: str) -> None:
        return None

    def create_volume(self, name: str, labels: Mapping[str, str]) -> None:
        raise ports.ContainerEngineError(REASON)

    def remove_volume(self, name: str) -> None:
        return None

    def list_volumes(self, labels: Mapping[str, str]) -> dict[str, dict[str, str]]:
        return {}

    def storage_driver(self) -> str:
        raise ports.ContainerEngineError(REASON)

    def image_id(self, ref: str) -> str | None:
        return None

    def fill_volumes(self, fill: specs.RunSpec) -> str:
        raise ports.ContainerEngineError(REASON)

    def create_container(self, spec: specs.ContainerSpec) -> str:
        raise ports.ContainerEngineError(REASON)

    def start_container(self, ref: str) -> None:
        raise ports.ContainerEngineError(REASON)

    def join_network(self, ref: str) -> None:
        raise ports.ContainerEngineError(REASON)

    def container_state(self, ref: str) -> ports.ContainerState | None:
        return None

    def remove_container(self, ref: str) -> None:
        return None

    def container_logs(self, ref: str, tail: int) -> str:
        raise ports.ContainerEngineError(REASON)

    def list_containers(self, labels: Mapping[str, str]) -> list[ports.ContainerState]:
        return []

    def list_networks(self, labels: Mapping[str, str]) -> list[str]:
        return []

    def put_archive(self, ref: str, path: str, data: bytes) -> None:
        raise ports.ContainerEngineError(REASON)

    def exec_in(
        self, ref: str, command: Sequence[str], user: str, timeout: float
    ) -> tuple[int, str]:
        raise ports.ContainerEngineError(REASON)


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
