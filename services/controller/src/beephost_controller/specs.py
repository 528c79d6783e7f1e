"""What the controller asks of its ports: the frozen specs their calls take.

``ImageBuildSpec``, ``RunSpec`` and ``CommitRunSpec`` for a ``ContainerEngine``'s
builds and one-shot containers (a ``RunSpec`` also fills a backend image's code
volumes, ``BackendContainers.fill_volumes``); ``ContainerSpec`` for the
``BackendContainers`` of backends. The interfaces themselves, with what they report
and the errors they raise, are in ``ports``; this module imports nothing of the
controller's.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ImageBuildSpec:
    """A Dockerfile build without network (``ContainerEngine.build_image``)."""

    #: the build context directory; its ``.dockerignore`` applies
    context: Path
    #: path of the Dockerfile inside ``context``
    dockerfile: str
    #: ``repository:tag`` of the result
    tag: str
    #: ``ARG`` values
    buildargs: Mapping[str, str] = field(default_factory=dict)
    #: labels added to the final image
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSpec:
    """A container run once without network or capabilities
    (``ContainerEngine.run``, ``BackendContainers.fill_volumes``)."""

    #: image reference or id
    image: str
    #: argv, run without a shell (the image's entrypoint is not used)
    command: Sequence[str]
    #: labels of the container, so a crash leaves findable leftovers
    labels: Mapping[str, str] = field(default_factory=dict)
    #: named volumes -> where each is mounted, read-write (the engine copies the
    #: image's content there into an empty one)
    volumes: Mapping[str, str] = field(default_factory=dict)
    #: seconds to wait for the exit before killing the container
    timeout: float = 60.0


@dataclass(frozen=True)
class CommitRunSpec:
    """A command run once without network, its result committed as an image
    (``ContainerEngine.commit_run``)."""

    #: image reference or id to run
    image: str
    #: argv, run without a shell (as the container's entrypoint: a commit keeps a
    #: container's command, so the image's own is restored)
    command: Sequence[str]
    #: ``repository:tag`` of the committed image
    tag: str
    #: ``uid:gid`` the command runs as (the image's user is kept)
    user: str
    #: host directory -> absolute container path, copied in (a tar through the API)
    #: before the start, owned by root
    files: Mapping[Path, str] = field(default_factory=dict)
    #: labels of the container (a crash leaves a container that cleanup by label
    #: finds), and of the image unless changed
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Dockerfile instructions for the image config (``LABEL``, ``USER``, ``ENV``)
    changes: Sequence[str] = ()
    #: seconds to wait for the exit before the container is removed
    timeout: float = 600.0


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
    #: The health check's argv (empty: none, as for a relay).
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
    #: named volumes (each made first with ``create_volume``) -> where each is
    #: mounted: the workspace, and the packages installed at run time
    volumes: Mapping[str, str] = field(default_factory=dict)
    #: named volumes mounted read-only, shared with other backends and not made or
    #: removed with this one: its image's code volumes (engine/code_volumes.py)
    shared_volumes: Mapping[str, str] = field(default_factory=dict)
    #: the egress proxy's host directories -> (where mounted, ``ro`` or ``rw``): its
    #: socket and trust bundle, read-only, in an allow-list backend; its state,
    #: socket and metrics in the proxy itself (engine/docker_egress.py)
    egress: Mapping[Path, tuple[str, str]] = field(default_factory=dict)
