"""The controller client's result types: runtimes, environments, jobs and backends.

Frozen dataclasses decoded from the controller's JSON replies by ``_controller``;
fields a newer controller adds are ignored, missing ones take their defaults.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

BackendType = Literal["http", "pipe", "rpc"]
"""The backend transports the controller starts."""

JOB_FINISHED = frozenset({"succeeded", "failed"})
BACKEND_FINISHED = frozenset({"exited", "stopped"})


@dataclass(frozen=True, slots=True)
class Runtime:
    """A CPython minor version the controller offers.

    Attributes:
        python: The minor version, e.g. ``3.13``.
        version: The exact CPython version once initialised, e.g. ``3.13.5``.
        image: The base image reference once initialised.
        source: Where the base image came from: ``debian`` or ``registry``.
        initialised: Whether the base image exists (``beep-host init``).
    """

    python: str
    version: str | None = None
    image: str | None = None
    source: str | None = None
    initialised: bool = False


@dataclass(frozen=True, slots=True)
class Egress:
    """An egress policy in effect (docs/operators/egress.md).

    Attributes:
        mode: ``none`` (no network), ``full`` (the whole network: unsafe for model
            code) or ``allow_list`` (only ``allow``, through the egress proxy).
        allow: The allowed destinations, as the API shows them: ``host`` or
            ``cidr``, ``ports``, and ``secret`` (a stored secret's name and the
            header it goes into).
    """

    mode: str = "none"
    allow: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class EgressRefusal:
    """A connection the egress proxy refused a backend (``egress_refusals``).

    Attributes:
        at: When, Unix seconds (``None``: not known).
        kind: ``connect`` (an HTTPS tunnel), ``http`` (a plain HTTP request),
            ``tls`` (a TLS server name other than the tunnel's host) or ``auth``
            (no valid proxy credential).
        destination: ``host:port`` as the sandbox asked for it.
        reason: Why it was refused.
    """

    at: float | None = None
    kind: str = ""
    destination: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Secret:
    """A stored secret: its name and when it was set, never its value.

    Attributes:
        name: The secret's name.
        updated_at: When its value was last set, Unix seconds.
    """

    name: str
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Environment:
    """A runtime plus requirements, built into a content-addressed image.

    Attributes:
        name: The environment's unique name.
        python: Its CPython minor version.
        requirements: Requirement specifiers, normalised and sorted by the controller.
        network: Whether its backends get the whole network.
        egress: Its backends' egress policy (``none``, ``full`` or an allow-list).
        admin: Whether this is the admin environment.
        status: ``pending``, ``building``, ``ready`` or ``failed``.
        image: The image reference once built.
        error: Why the last build failed.
        job_id: The id of its last build job.
        created_at: Creation time, Unix seconds.
        updated_at: Time of the last change, Unix seconds.
    """

    name: str
    python: str = ""
    requirements: tuple[str, ...] = ()
    network: bool = False
    admin: bool = False
    status: str = "pending"
    image: str | None = None
    error: str | None = None
    job_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    egress: Egress = field(default_factory=Egress)


@dataclass(frozen=True, slots=True)
class Job:
    """A long-running controller task: a runtime init, an environment build, or an
    install into a backend.

    Attributes:
        id: The job's id, e.g. ``job-1f2e3d4c5b6a``.
        kind: ``init``, ``build`` or ``install``.
        target: The runtime (``3.13``), environment name or backend id it works on.
        status: ``queued``, ``running``, ``succeeded`` or ``failed``.
        error: Why it failed.
        created_at: Creation time, Unix seconds.
        started_at: Start time, once started.
        finished_at: End time, once finished.
    """

    id: str
    kind: str = ""
    target: str = ""
    status: str = "queued"
    error: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        """Whether the job ended (``succeeded`` or ``failed``)."""
        return self.status in JOB_FINISHED

    @property
    def succeeded(self) -> bool:
        """Whether the job ended successfully."""
        return self.status == "succeeded"


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a job's log.

    Attributes:
        seq: Its position in the log; increasing, not necessarily contiguous.
        line: The text, without its newline.
    """

    seq: int
    line: str


@dataclass(frozen=True, slots=True)
class JobLogPage:
    """A page of a job's log (:meth:`ControllerClient.job_log`).

    Attributes:
        job: The job, as of this page.
        lines: The lines after the requested position, oldest first.
        next: Pass as ``after`` to get the following lines.
    """

    job: Job
    lines: tuple[LogLine, ...]
    next: int


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of a backend container; ``None`` keeps the controller's default.

    Attributes:
        memory_mb: Memory limit in MiB.
        cpus: CPU limit, in CPUs (``0.5`` is half of one).
        pids: Maximum number of processes.
    """

    memory_mb: int | None = None
    cpus: float | None = None
    pids: int | None = None


@dataclass(frozen=True, slots=True)
class Backend:
    """A backend container the controller runs for an environment.

    Attributes:
        id: The backend's id.
        environment: The environment it runs.
        type: Its transport: ``http``, ``pipe`` or ``rpc``.
        status: ``starting``, ``ready``, ``unhealthy``, ``exited`` or ``stopped``.
        reason: Why it is in that status (an exit code, a failed health check).
        endpoint: The URL to connect to (``http://``, ``grpc://`` or ``unix://``).
        token: Its token; only in the reply that created it, else ``None``.
        container_id: The Docker container's id.
        created_at: Creation time, Unix seconds.
        ready_at: When it first became ready.
        restarts: How often it was restarted after a crash (Docker's and the
            controller's restarts).
        exit_code: The exit code of its last exit.
        last_exit: Why it last exited: ``crashed``, ``oom_killed`` or ``stopped``.
        admin: Whether it holds a controller token (admin environment).
        limits: Its resource limits.
        options: Its hardening (``read_only``, ``network``, ``user``, ``cap_add``...).
        ttl: Its maximum lifetime in seconds (``None``: none).
        started_by: The admin backend whose token started it (``None``: the
            controller's token).
        idle_timeout: Seconds without a request after which the controller stops
            it (status ``stopped``, reason ``idle``; ``None``: never).
        expires_at: When that lifetime ends, Unix seconds: the controller then stops
            it (status ``stopped``, reason ``expired``).
        pooled: Pre-started in its environment's warm pool and not handed out yet.
        claimed_at: When a start claimed it from a warm pool (``None``: it was
            started for its caller).
        egress: Its egress policy in effect: its start's, else its environment's.
    """

    id: str
    environment: str = ""
    type: str = ""
    status: str = "starting"
    reason: str | None = None
    endpoint: str | None = None
    token: str | None = field(default=None, repr=False)
    container_id: str | None = None
    created_at: float = 0.0
    ready_at: float | None = None
    restarts: int = 0
    exit_code: int | None = None
    last_exit: str | None = None
    admin: bool = False
    limits: Limits = field(default_factory=Limits)
    options: Mapping[str, Any] = field(default_factory=dict)
    ttl: float | None = None
    expires_at: float | None = None
    started_by: str | None = None
    idle_timeout: float | None = None
    pooled: bool = False
    claimed_at: float | None = None
    egress: Egress = field(default_factory=Egress)


@dataclass(frozen=True, slots=True)
class Pool:
    """A warm pool: ready, unclaimed backends of one environment and type.

    Attributes:
        environment: The environment its members run.
        type: Their transport: ``http``, ``pipe`` or ``rpc``.
        size: How many ready, unclaimed members it keeps.
        limits: The members' limits (a start asking for exactly these claims one).
        options: The members' hardening (likewise).
        source: ``environment`` (its own setting) or ``default`` (the controller's
            ``POOL_SIZE``).
        ready: Members ready to be claimed now.
        starting: Members starting (a refill under way).
    """

    environment: str
    type: str
    size: int = 0
    limits: Limits = field(default_factory=Limits)
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = "environment"
    ready: int = 0
    starting: int = 0


@dataclass(frozen=True, slots=True)
class Image:
    """An environment image on the controller's engine.

    Attributes:
        id: The image's id.
        tags: Its tags (the environments name it by one of them).
        size: Bytes on disk (layers it shares with other images counted).
        code_volumes_bytes: Bytes its code volumes take on the engine's disk
            besides (the controller's CODE_VOLUMES; 0: none); they go with it.
        environments: The environments built into it; none: ``prune_images``
            removes it.
    """

    id: str
    tags: tuple[str, ...] = ()
    size: int = 0
    environments: tuple[str, ...] = ()
    code_volumes_bytes: int = 0

    @property
    def disk_bytes(self) -> int:
        """All it takes on the engine's disk: ``size`` and ``code_volumes_bytes``."""
        return self.size + self.code_volumes_bytes


@dataclass(frozen=True, slots=True)
class InstalledPackage:
    """A package installed into a running backend (:meth:`ControllerClient.install`).

    Attributes:
        name: The distribution's name, as its metadata spells it.
        version: Its version.
    """

    name: str
    version: str


@dataclass(frozen=True, slots=True)
class BackendConnection:
    """What a client needs to reach a backend.

    Attributes:
        url: The backend's URL; its scheme picks the transport.
        token: The backend's token, if it has one.
    """

    url: str
    token: str | None = field(default=None, repr=False)
