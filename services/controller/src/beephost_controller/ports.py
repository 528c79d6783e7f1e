"""The controller's ports: the interfaces it needs from the outside world.

``BackendEngine`` (where backends run, in backend terms: the one port of the backend
use cases), ``ImageBuilder`` (what the use cases ask of the image pipeline), and the
Docker engine's own two, ``ContainerEngine`` (images and one-shot containers, for the
image builders) and ``BackendContainers`` (hardened backend containers, for
``DockerBackends``), with what they report and the errors they raise; the specs their
calls take are in ``specs`` and ``starts``. ``engine/`` implements them on the Docker
SDK, ``images`` the builder; ``testing`` has in-memory versions. Nothing here imports
the rest of the controller but those specs, the rows, the resolver's ``Lock`` and the
job log's type.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from beephost_controller.resolver import Lock
from beephost_controller.rows import BackendRow, BackendUpdate, EnvironmentRow
from beephost_controller.specs import (
    CommitRunSpec,
    ContainerSpec,
    ImageBuildSpec,
    RunSpec,
)
from beephost_controller.starts import BackendPlan, BackendRequest, Minted
from beephost_protocol.errors import BeepHostError


class ContainerEngineError(Exception):
    """The container engine refused or failed an operation."""


class ContainerConfigRefused(ContainerEngineError):
    """The engine refused a container's configuration (a bad request, such as a CPU
    limit over the host's): the caller's input is at fault, not the engine."""


class PortInUse(ContainerEngineError):
    """A container could not start: a host port it publishes is taken (by another
    container, or by any other process on the host)."""


class ImageNotFoundError(ContainerEngineError):
    """An image or a registry manifest does not exist."""


class ContainerGone(ContainerEngineError):
    """A container does not exist, or the engine is removing it (its logs and state
    are gone for good: asking again does not help)."""


class ContainerRunError(ContainerEngineError):
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


class ContainerEngine(Protocol):
    """Image and container operations, implemented by ``DockerEngine`` and ``FakeEngine``.

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
            ContainerEngineError: The build failed; the message ends with the log tail.
        """
        ...

    def run(self, spec: RunSpec) -> str:
        """Run a container once without network or capabilities and return its stdout.

        The container is removed afterwards, whatever happens.

        Raises:
            ContainerRunError: Non-zero exit status (stderr in ``output``).
            ContainerEngineError: The container could not be created or started.
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
            ContainerEngineError: The container could not be created, run or committed.
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
    #: the two runs unreachable until ``join_network``. Docker's own business: the
    #: backend use cases never read it (``BackendEngine.tidy`` joins).
    unjoined_network: str | None = None
    #: Why it exited when no exit code says it (a pod evicted, deleted by hand, or
    #: whose image cannot be pulled): the backend's reason, as the engine words it.
    detail: str | None = None


@dataclass(frozen=True)
class Sandbox:
    """A backend's sandbox as its engine finds it: whose it is, and its state."""

    backend_id: str
    state: ContainerState


@dataclass(frozen=True)
class ServiceState:
    """A backend this controller did not start (a compose service), as its engine
    finds it by its container's name."""

    state: ContainerState
    #: Bytes of memory in use (None: not known).
    memory_used: int | None


@dataclass(frozen=True)
class EgressRefusal:
    """One refused connection, as the proxy logged it."""

    #: When (seconds since the epoch; None if the log line had no time).
    at: float | None
    #: ``connect`` (an HTTPS tunnel), ``http`` (a plain request), ``tls`` (a server
    #: name that did not match the CONNECT), ``auth`` (no valid credential).
    kind: str
    destination: str
    reason: str


class LaunchFailed(Exception):
    """A launch failed: ``error`` says why, in the API's terms. What it had made is
    removed unless ``undone`` is False (then what is left needs the row, for
    reconciliation to find it)."""

    def __init__(self, error: BeepHostError, *, undone: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.undone = undone


#: How an engine writes into the row of the backend it launches (its sandbox's id,
#: a port it changed, when it started), as it goes: a crash then leaves a row that
#: says what exists.
Record = Callable[[BackendUpdate], None]

#: What ``BackendEngine.relay_counts`` counts (an engine that publishes ports through
#: relays made ahead of their backends, Docker's).
RELAY_OUTCOMES = ("made", "taken", "missed", "discarded")


class BackendEngine(Protocol):
    """Where backends run, in backend terms: all the backend use cases
    (``backends/``) ask of an engine. ``engine.docker_backends.DockerBackends`` runs
    them as Docker containers; ``engine.no_engine.NoEngineBackends`` refuses.

    A sandbox is what runs one backend (Docker: its container, with its relay, volumes
    and socket directory); the engine finds its own by the rows' ids and names. Every
    call may raise ``ContainerEngineError``.
    """

    def plan(
        self,
        request: BackendRequest,
        environment: EnvironmentRow,
        minted: Minted,
        held_ports: Mapping[int, str],
    ) -> BackendPlan:
        """Decide a start (no sandbox is made): its row, and the engine's layout.

        Args:
            held_ports: Host port -> the backend holding it (kept for its restarts).

        Raises:
            InvalidRequest: The environment is not ready, or the request is invalid.
            Conflict: The requested port is held by another backend.
        """
        ...

    def release(self, planned: BackendPlan) -> None:
        """Let go of what planning took for a start refused before its launch (its
        row is not recorded): Docker gives back a relay made ahead."""
        ...

    def launch(self, planned: BackendPlan, record: Record) -> None:
        """Make the planned sandbox and start it; its row is recorded already.

        Raises:
            LaunchFailed: What was made is removed (or left, ``undone`` False).
        """
        ...

    def state(self, row: BackendRow) -> ContainerState | None:
        """The backend's sandbox as it is now; None if it is gone."""
        ...

    def sweep(self) -> AbstractContextManager[None]:
        """A look at many backends in a row (the supervisor's, a listing's): within
        it, this thread's ``state`` may come from one reading of every sandbox taken
        at its start, where the engine pays per read (Kubernetes: one list of pods,
        not a read per backend); a sandbox that reading lacks is read on its own."""
        ...

    def endpoint(self, row: BackendRow, state: ContainerState) -> str | None:
        """The URL clients reach the backend at (None: not known yet)."""
        ...

    def probe_endpoint(self, row: BackendRow) -> str:
        """The URL the controller reaches the backend at (its readiness probe)."""
        ...

    def memory_used(self, row: BackendRow) -> int | None:
        """The bytes of memory the backend's sandbox uses now (its working set: the
        page cache it could give back is not counted); None when not known (not
        running, or the engine has no such measure: a cluster without
        metrics-server)."""
        ...

    def service(self, container: str) -> ServiceState | None:
        """A backend this controller did not start but the console lists (the
        compose system's default backends, ``CONSOLE_BACKENDS``), by its container's
        name: its state and memory in use; None when the engine has no such
        container (or, off Docker, no such thing)."""
        ...

    def restart(self, row: BackendRow) -> None:
        """Start the backend's exited sandbox again, as it was."""
        ...

    def remove(self, row: BackendRow) -> None:
        """Remove everything of the backend's sandbox (its row stays); what is gone
        already is no error."""
        ...

    def logs(self, row: BackendRow, tail: int) -> str:
        """The last ``tail`` lines of the backend's output.

        Raises:
            ContainerGone: Its sandbox is gone, and its logs with it.
        """
        ...

    def copy_in(self, row: BackendRow, path: str, data: bytes) -> None:
        """Extract a tar archive into the running backend's ``path`` (on one of its
        volumes)."""
        ...

    def exec_in(
        self, row: BackendRow, command: Sequence[str], user: str, timeout: float
    ) -> tuple[int, str]:
        """Run ``command`` in the running backend as ``user``: its exit status and
        output."""
        ...

    def sandboxes(self) -> list[Sandbox]:
        """Every backend sandbox of this controller's, each with its backend's id."""
        ...

    def tidy(self, live: Iterable[BackendRow], used_images: Iterable[str]) -> int:
        """Remove what the engine made and nothing needs any more: sandboxes of
        backends not in ``live`` and the engine's own leftovers (per image: of
        images none of ``used_images`` is); set right what a crash left half-made
        for ``live`` backends. Returns how many orphan sandboxes (or their parts
        that publish a port) it removed."""
        ...

    def image_disk_use(self) -> dict[str, int]:
        """Image id -> the bytes the engine keeps for its backends beside the image
        (Docker: its code volumes)."""
        ...

    def release_images(self, used: Iterable[str]) -> None:
        """Drop what the engine keeps per image for every image none of ``used``
        is."""
        ...

    def settle(self, timeout: float) -> bool:
        """Wait for the engine's background work (at most ``timeout`` seconds);
        whether none is left."""
        ...

    def remove_shared(self) -> None:
        """Remove what the engine shares between backends (once none runs)."""
        ...

    def egress_refusals(self, row: BackendRow) -> list[EgressRefusal]:
        """The last refusals of the backend's egress (its policy an allow-list),
        oldest first; empty when none, or the engine has no egress proxy."""
        ...

    def egress_counts(self) -> dict[str, int]:
        """The egress proxy's decisions so far, by decision (``allowed``,
        ``refused``); empty without a proxy."""
        ...

    def relay_counts(self) -> dict[str, int]:
        """Relays made ahead of their backends so far, by outcome (``made``,
        ``taken``, ``missed``, ``discarded``); empty on an engine that makes none."""
        ...

    def prepare_egress(self, log: Callable[[str], None]) -> None:
        """Make the egress proxy run, ahead of the first allow-list start (an
        environment with an allow-list was just built), so that start does not wait
        for it; nothing on an engine without one.

        Raises:
            BeepHostError, ContainerEngineError: It cannot (the start tries again).
        """
        ...


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

    def fill_volumes(self, fill: RunSpec) -> str:
        """Copy ``fill.image``'s directories into empty named volumes: ``fill.volumes``
        maps each volume to the directory it receives (the engine's copy of an image's
        content into an empty volume, made by a one-shot container, ``fill.labels`` on
        it, that runs ``fill.command`` with the volumes mounted, and is removed).

        Returns:
            What ``fill.command`` wrote to its standard output.

        Raises:
            ContainerEngineError: The engine failed, or the command exited non-zero.
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

    def container_memory_used(self, ref: str) -> int | None:
        """The running container's memory in use, in bytes, from one non-streaming
        sample of the engine's stats (without its inactive page cache, as ``docker
        stats`` shows it); None when it is not running or gone."""
        ...

    def remove_container(self, ref: str) -> None: ...

    def container_logs(self, ref: str, tail: int, *, timestamps: bool = False) -> str:
        """The last ``tail`` lines of its output (each with the engine's RFC 3339
        time first if ``timestamps``)."""
        ...

    def network_gateways(self, name: str) -> list[str]:
        """The gateway addresses of network ``name`` (for a subnet that names none,
        its first address, which the engine gives it); empty if it has no subnet.

        Raises:
            ContainerEngineError: There is no such network, or the engine failed.
        """
        ...

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
            ContainerEngineError: It could not run, or ran past ``timeout`` seconds.
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


#: Where a build's progress goes, a line a call (a job's log).
BuildLog = Callable[[str], None]


class ImageBuilder(Protocol):
    """Makes images; ``images.builder.DockerImageBuilder`` is the one on Docker."""

    @property
    def code_version(self) -> str:
        """A hash of the backend servers' code baked into environment images."""
        ...

    def ensure_base(self, python: str, log: Callable[[str], None]) -> BaseImageRef:
        """Make sure the runtime's pinned-CPython base image exists."""
        ...

    def environment_images(self) -> list[ImageInfo]:
        """The environment images this controller built (its labels on them)."""
        ...

    def remove_environment_image(self, image: ImageInfo) -> None:
        """Remove an environment image, every tag of it.

        Raises:
            ContainerEngineError: A container uses it (it is kept).
        """
        ...

    def ensure_environment(
        self, *, base: BaseImageRef, lock: Lock, admin: bool, log: BuildLog
    ) -> str:
        """The tag of the environment image of ``lock`` on ``base`` (servers plus the
        locked packages, and the client SDK if ``admin``): found by its content
        address (``images.keys.environment_tag``), or built."""
        ...

    def ensure_egress_proxy(self, log: Callable[[str], None]) -> str:
        """The tag of the egress proxy's image (``images.egress_proxy``): found by
        its content address, or built offline on the CPython 3.11 base image."""
        ...


class ImagePublisher(Protocol):
    """Puts local images where a cluster's nodes pull them from (a registry)."""

    def publish(self, ref: str, repository: str) -> str:
        """Push the local image ``ref`` to ``repository`` (``registry/path/name``).

        Returns:
            Its pull reference by digest, ``repository@sha256:...``: what a pod names,
            so a tag moved later never changes what runs.

        Raises:
            ImageNotFoundError: There is no local image ``ref``.
            ContainerEngineError: The push failed (the registry refused or is down).
        """
        ...
