"""Long-running backend containers: the typed surface and its data.

``DockerRuntime`` implements ``BackendContainers``; the controller's backend service
only talks to this protocol.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ContainerSpec:
    """A hardened backend container.

    The defaults are the hardening (non-root, every capability dropped,
    no-new-privileges, read-only root with a small tmpfs, no network); a backend may
    relax one only by an explicit field. There is no field for host mounts other than
    the socket directory: the Docker socket can never reach a backend.
    """

    name: str
    image: str
    command: Sequence[str]
    labels: Mapping[str, str]
    environment: Mapping[str, str]
    healthcheck: Sequence[str]
    memory_mb: int = 512
    cpus: float = 1.0
    pids: int = 256
    read_only: bool = True
    tmpfs_mb: int = 64
    user: str = "10001:10001"
    cap_add: Sequence[str] = ()
    no_new_privileges: bool = True
    #: ``None``: no network at all (``network_mode=none``); else a network name.
    network: str | None = None
    #: container port -> (host address, host port or None for a random one)
    ports: Mapping[int, tuple[str, int | None]] = field(default_factory=dict)
    #: host directory bind-mounted at /run/beephost
    socket_dir: Path | None = None
    #: host directory bind-mounted at /run/beephost-controller (admin backends only)
    controller_socket_dir: Path | None = None
    group_add: Sequence[str] = ()
    restart_retries: int = 5


@dataclass(frozen=True)
class ContainerState:
    id: str
    name: str
    labels: Mapping[str, str]
    status: str  # created | running | restarting | exited | dead | paused
    health: str | None  # starting | healthy | unhealthy | None
    exit_code: int
    oom_killed: bool
    restart_count: int
    ports: Mapping[int, int]  # container port -> host port


class BackendContainers(Protocol):
    def create_network(self, name: str, labels: Mapping[str, str]) -> None:
        """A bridge network with no outbound route (no masquerade, no ICC)."""
        ...

    def remove_network(self, name: str) -> None: ...

    def create_container(self, spec: ContainerSpec) -> str:
        """Create (not start) the container; returns its id."""
        ...

    def start_container(self, ref: str) -> None: ...

    def container_state(self, ref: str) -> ContainerState | None: ...

    def remove_container(self, ref: str) -> None: ...

    def container_logs(self, ref: str, tail: int) -> str: ...

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerState]: ...

    def list_networks(self, labels: Mapping[str, str]) -> list[str]: ...
