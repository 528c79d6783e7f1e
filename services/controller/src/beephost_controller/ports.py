"""The controller's ports: the three interfaces it needs from the outside world.

``ContainerRuntime`` (images and one-shot containers, for the image builders),
``BackendContainers`` (long-running hardened backend containers, for the backend
lifecycle) and ``ImageBuilder`` (what the use cases ask of the image pipeline), with
the plain data and errors they exchange. ``runtime/docker_*.py`` implement the first
two on the Docker SDK, ``images`` the third; ``testing`` has in-memory versions.
Nothing here imports the rest of the controller but the resolver's ``Lock`` and the
job log's type.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from beephost_controller.jobs import JobLog
from beephost_controller.resolver import Lock


class ContainerRuntimeError(Exception):
    """The container engine refused or failed an operation."""


class ContainerConfigRefused(ContainerRuntimeError):
    """The engine refused a container's configuration (a bad request, such as a CPU
    limit over the host's): the caller's input is at fault, not the engine."""


class PortInUse(ContainerRuntimeError):
    """A container could not start: a host port it publishes is taken (by another
    container, or by any other process on the host)."""


class ImageNotFoundError(ContainerRuntimeError):
    """An image or a registry manifest does not exist."""


class ContainerRunError(ContainerRuntimeError):
    """A one-shot container exited with a non-zero status."""

    def __init__(self, message: str, *, exit_code: int, output: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.output = output


@dataclass(frozen=True)
class ImageInfo:
    """What the engine knows about one local image."""

    id: str
    tags: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    size: int = 0
    repo_digests: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageBuildSpec:
    """A Dockerfile build without network (``ContainerRuntime.build_image``)."""

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
    (``ContainerRuntime.run``)."""

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
    (``ContainerRuntime.commit_run``)."""

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


class ContainerRuntime(Protocol):
    """Image and container operations, implemented by ``DockerRuntime`` and ``FakeRuntime``.

    Image references are anything the engine resolves: ``repo:tag``, ``repo@sha256:...``
    or an image id.
    """

    def get_image(self, ref: str) -> ImageInfo | None:
        """Inspect a local image; ``None`` if there is none by that reference."""
        ...

    def import_image(
        self, tarball: Path, tag: str, *, changes: Sequence[str] = ()
    ) -> ImageInfo:
        """Create a one-layer image from a root filesystem tarball (``docker import``).

        ``changes`` are Dockerfile instructions (``LABEL``, ``ENV``, ``CMD``...) applied
        to the image config.
        """
        ...

    def pull_image(self, repository: str, digest: str) -> ImageInfo:
        """Pull ``repository@digest``; raises ``ImageNotFoundError`` if it is missing."""
        ...

    def tag_image(self, ref: str, tag: str) -> None:
        """Point ``tag`` (``repo:tag``) at the image ``ref``, moving it if it exists."""
        ...

    def build_labelled_image(
        self, base: str, tag: str, labels: Mapping[str, str]
    ) -> ImageInfo:
        """Build ``FROM base`` with extra labels only, tagged ``tag``, without network."""
        ...

    def build_image(self, build: ImageBuildSpec) -> ImageInfo:
        """Build ``build.dockerfile`` (relative to ``build.context``) without network,
        tagged ``build.tag``.

        The legacy builder: no ``RUN --mount``, no ``# syntax=``; images named in
        ``FROM`` must be local (the engine may try to pull a missing one, and fail).

        Raises:
            ContainerRuntimeError: The build failed; the message ends with the log tail.
        """
        ...

    def run(self, spec: RunSpec) -> str:
        """Run a container once without network or capabilities and return its stdout.

        The container is removed afterwards, whatever happens.

        Raises:
            ContainerRunError: Non-zero exit status (stderr in ``output``).
            ContainerRuntimeError: The container could not be created or started.
        """
        ...

    def commit_run(self, run: CommitRunSpec) -> ImageInfo:
        """Run ``run.command`` once without network and commit the result as
        ``run.tag``.

        One layer on ``run.image`` (``docker commit``), without the build cache and
        the per-instruction commits of a Dockerfile. ``run.files`` go in through the
        engine's API (the engine need not see this process's filesystem: a controller
        in a container keeps its caches on a volume), so they are in the image unless
        the command removes them. The container is removed afterwards, whatever
        happens.

        The image keeps ``run.image``'s config (user, entrypoint, command,
        environment): not the run's user and command. The run's ``labels`` stay on
        the image unless a change overrides them, as an engine's commit merges them.

        Raises:
            ContainerRunError: Non-zero exit status (stdout and stderr in ``output``).
            ContainerRuntimeError: The container could not be created, run or committed.
        """
        ...

    def remove_image(self, ref: str, *, force: bool = False) -> None:
        """Remove an image or untag one of its references."""
        ...

    def list_images(self, labels: Mapping[str, str]) -> list[ImageInfo]:
        """Every local image carrying all of ``labels`` (tagged or not)."""
        ...

    def remove_by_labels(self, labels: Mapping[str, str]) -> list[str]:
        """Remove every container, volume and image carrying all of ``labels``.

        Returns the removed image ids. This is how tests clean up: never by name.
        """
        ...


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
    #: named volumes (each made first with ``create_volume``) -> where each is
    #: mounted: the workspace, and the packages installed at run time
    volumes: Mapping[str, str] = field(default_factory=dict)
    #: named volumes mounted read-only, shared with other backends and not made or
    #: removed with this one: its image's code volumes (backends/code_volumes.py)
    shared_volumes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VolumeFillSpec:
    """An image's directories copied into empty named volumes
    (``BackendContainers.fill_volumes``)."""

    #: the image whose content is copied
    image: str
    #: named volume (made empty first with ``create_volume``) -> the directory of
    #: the image it receives
    mounts: Mapping[str, str]
    #: labels of the container that makes the copy
    labels: Mapping[str, str]
    #: argv run in that container with the volumes mounted, to make and prove the
    #: copy; what it writes to its standard output is the fill's answer
    check: Sequence[str]


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
    #: Seconds the server reports being idle, from its last health check's output
    #: (``idle=N``); None when it reports none.
    idle_seconds: float | None = None
    #: The network it was created for and has not joined yet: the join follows its
    #: start (``BackendContainers.start_container``), so one a crash cut short between
    #: the two runs unreachable until ``join_network``.
    unjoined_network: str | None = None


class BackendContainers(Protocol):
    def ensure_network(self, name: str, labels: Mapping[str, str]) -> None:
        """A bridge network with no outbound route (no masquerade, no ICC), made
        unless it exists (one name is one network, even for concurrent calls)."""
        ...

    def remove_network(self, name: str) -> None: ...

    def create_volume(self, name: str, labels: Mapping[str, str]) -> None:
        """A named volume on the engine's disk (a backend's workspace)."""
        ...

    def remove_volume(self, name: str) -> None:
        """Remove a volume; one that is gone already is no error."""
        ...

    def list_volumes(self, labels: Mapping[str, str]) -> dict[str, dict[str, str]]:
        """The volumes carrying ``labels``: name -> all their labels."""
        ...

    def storage_driver(self) -> str:
        """The engine's storage driver (``overlay2``, ``fuse-overlayfs``, ...)."""
        ...

    def image_id(self, ref: str) -> str | None:
        """The id of the local image ``ref``; ``None`` if there is none."""
        ...

    def fill_volumes(self, fill: VolumeFillSpec) -> str:
        """Copy ``fill.image``'s directories into empty named volumes: ``fill.mounts``
        maps each volume to the directory it receives (the engine's copy of an image's
        content into an empty volume, made by a container, ``fill.labels`` on it, that
        runs ``fill.check`` with the volumes mounted, and is removed).

        Returns:
            What ``check`` wrote to its standard output.

        Raises:
            ContainerRuntimeError: The engine failed, or ``check`` exited non-zero.
        """
        ...

    def create_container(self, spec: ContainerSpec) -> str:
        """Create (not start) the container; returns its id. Its network, if any,
        is joined when it starts."""
        ...

    def start_container(self, ref: str) -> None:
        """Start it, then join the network it was created for (see
        ``join_network``); raises ``PortInUse`` when its host port is taken."""
        ...

    def join_network(self, ref: str) -> None:
        """Join the network the container was created for, if it has not yet (the
        engine's network set-up then runs beside the process's start, not before)."""
        ...

    def container_state(self, ref: str) -> ContainerState | None: ...

    def remove_container(self, ref: str) -> None: ...

    def container_logs(self, ref: str, tail: int) -> str: ...

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerState]: ...

    def list_networks(self, labels: Mapping[str, str]) -> list[str]: ...

    def put_archive(self, ref: str, path: str, data: bytes) -> None:
        """Extract a tar archive into a running container's ``path`` (which must be
        on one of its volumes: the root is read-only)."""
        ...

    def exec_in(
        self, ref: str, command: Sequence[str], user: str, timeout: float
    ) -> tuple[int, str]:
        """Run ``command`` in a running container as ``user``: its exit status and
        its output (stdout and stderr).

        Raises:
            ContainerRuntimeError: It could not run, or ran past ``timeout`` seconds.
        """
        ...


@dataclass(frozen=True)
class BaseImageRef:
    """What the builder reports about a runtime's base image."""

    python: str
    image: str
    image_id: str
    version: str
    source: str


class ImageBuilder(Protocol):
    """Makes images; ``images.builder.DockerImageBuilder`` is the one on Docker."""

    @property
    def code_version(self) -> str:
        """A hash of the backend servers' code baked into environment images."""
        ...

    def ensure_base(self, python: str, log: Callable[[str], None]) -> BaseImageRef:
        """Make sure the runtime's pinned-CPython base image exists."""
        ...

    def image_exists(self, tag: str) -> bool: ...

    def environment_images(self) -> list[ImageInfo]:
        """The environment images this controller built (its labels on them)."""
        ...

    def remove_environment_image(self, image: ImageInfo) -> None:
        """Remove an environment image, every tag of it.

        Raises:
            ContainerRuntimeError: A container uses it (it is kept).
        """
        ...

    def build_environment(
        self, *, base: BaseImageRef, lock: Lock, tag: str, admin: bool, log: JobLog
    ) -> None:
        """Build the environment image ``tag`` (servers plus the locked packages)."""
        ...
