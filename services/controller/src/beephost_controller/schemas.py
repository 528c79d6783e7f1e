"""Request and response models of the controller's REST API (apart from storage rows)."""

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from beephost_controller.requirements import check_syntax

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
#: NAME_PATTERN in words, for the error a person reads.
NAME_RULE = (
    "1 to 63 characters: lowercase letters, digits, '.', '_' and '-', starting with "
    "a lowercase letter or a digit"
)
_NAME_RE = re.compile(NAME_PATTERN)
BackendType = Literal["http", "pipe", "rpc"]
EnvironmentStatus = Literal["pending", "building", "ready", "failed"]
JobStatus = Literal["queued", "running", "succeeded", "failed"]
BackendStatus = Literal["starting", "ready", "unhealthy", "exited", "stopped"]
#: Why a backend's container last exited.
ExitReason = Literal["crashed", "oom_killed", "stopped"]

#: The longest lifetime a backend may be given: 30 days.
MAX_BACKEND_TTL = 30 * 86400.0

#: The most ready, unclaimed backends one pool may keep.
MAX_POOL_SIZE = 64


def check_name(value: str) -> str:
    """An environment name, or ValueError saying in words what a name may contain."""
    if not _NAME_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid name: a name is {NAME_RULE}")
    return value


def parse_requirements_txt(text: str) -> list[str]:
    """Requirement lines of a requirements.txt; anything but a plain PEP 508 line
    (options such as ``-r`` or ``--index-url``, continuations, variables) is refused.

    Raises:
        ValueError: A line is no plain requirement (requirements.RequirementRefused).
    """
    requirements = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        check_syntax(line)
        requirements.append(line)
    return requirements


def normalize(requirements: list[str]) -> list[str]:
    """One canonical order and spelling, so equal environments compare equal."""
    return sorted(
        {" ".join(r.split()) for r in requirements if r.strip()}, key=str.lower
    )


def _plain(lines: list[str]) -> list[str]:
    for line in lines:
        check_syntax(line)
    return lines


#: PEP 508 requirements, each refused unless plain (no options, no ``$``): requirements.py.
PlainRequirements = Annotated[list[str], AfterValidator(_plain)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuntimePublic(_Model):
    python: str = Field(description="CPython minor version, e.g. 3.13.")
    version: str | None = Field(description="Exact CPython version once initialised.")
    image: str | None = Field(description="Base image reference once initialised.")
    source: str | None = Field(description="debian or registry.")
    initialised: bool


class RuntimeInit(_Model):
    python: str | None = Field(
        None, description="Minor version; default: the default runtime."
    )


#: The name's pattern stays in the document (clients and fuzzers read it); the check
#: is check_name's, whose error says it in words.
_NAME_SCHEMA: JsonDict = {"pattern": NAME_PATTERN, "maxLength": 63}


class EnvironmentCreate(_Model):
    name: str = Field(
        json_schema_extra=_NAME_SCHEMA,
        description=f"Unique environment name: {NAME_RULE}.",
    )
    python: str | None = Field(
        None, description="CPython minor version (default runtime)."
    )
    requirements: PlainRequirements = Field(
        default_factory=list,
        description=(
            "PEP 508 requirement specifiers (`numpy>=2`, `attrs[tests]==25.*; "
            "python_version >= '3.11'`); no options, no `$`, and direct references "
            "(`name @ URL`) only with a URL scheme the operator allows."
        ),
    )
    requirements_txt: str | None = Field(
        None, description="requirements.txt text, merged with `requirements`."
    )
    network: bool = Field(
        False, description="Whether the environment's backends get network."
    )

    @field_validator("name")
    @classmethod
    def _name_rule(cls, value: str) -> str:
        return check_name(value)

    @model_validator(mode="after")
    def _merge(self) -> "EnvironmentCreate":
        if self.requirements_txt:
            self.requirements = self.requirements + parse_requirements_txt(
                self.requirements_txt
            )
            self.requirements_txt = None
        self.requirements = normalize(self.requirements)
        return self


class EnvironmentPublic(_Model):
    name: str
    python: str
    requirements: list[str]
    network: bool
    admin: bool
    status: EnvironmentStatus
    image: str | None
    error: str | None
    job_id: str | None
    created_at: float
    updated_at: float


class JobPublic(_Model):
    id: str
    kind: str
    target: str
    status: JobStatus
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None


class LogLine(_Model):
    seq: int
    line: str


class JobLogPage(_Model):
    job: JobPublic
    lines: list[LogLine]
    next: int = Field(description="Pass as `after` to get the following lines.")


class BackendLimits(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    memory_mb: int = Field(512, ge=16, le=1 << 20, description="Memory limit, MiB.")
    cpus: float = Field(1.0, gt=0, le=256, description="CPU limit, in CPUs.")
    pids: int = Field(256, ge=8, le=1 << 16, description="Process limit.")
    workspace_quota_bytes: int | None = Field(
        None,
        ge=0,
        strict=True,
        description="Bytes the workspace may hold (0: no limit); default: the "
        "controller's WORKSPACE_QUOTA_BYTES.",
    )


#: Capabilities a backend may get back explicitly (Docker's default set, minus the
#: ones that touch the host: MKNOD, AUDIT_WRITE, SYS_CHROOT).
Capability = Literal[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
]


class BackendOptions(_Model):
    """Hardening, each default changeable only by naming it here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    read_only: bool = Field(True, description="Read-only root filesystem.")
    network: bool | None = Field(
        None, description="Network access; default: the environment's setting."
    )
    tmpfs_mb: int = Field(64, ge=1, le=1 << 16, description="Size of the /tmp tmpfs.")
    user: str = Field(
        "10001:10001",
        pattern=r"^[0-9]{1,10}:[0-9]{1,10}$",
        description="uid:gid the servers and user code run as (0:0 is root).",
    )
    cap_add: list[Capability] = Field(
        default_factory=list,
        description="Capabilities given back (every other one stays dropped).",
    )
    no_new_privileges: bool = Field(True, description="The no-new-privileges flag.")


class BackendCreate(_Model):
    environment: str = Field(
        json_schema_extra=_NAME_SCHEMA, description="Environment to run."
    )
    type: BackendType = Field(description="Transport: http, pipe or rpc.")
    token: str | None = Field(
        None,
        min_length=16,
        max_length=256,
        # What every transport can carry (gRPC metadata: printable ASCII, no spaces);
        # the rpc backend refuses anything else at start-up, and would crash-loop.
        pattern=r"^[!-~]+$",
        description="The backend's token; default: a random one.",
    )
    port: int | None = Field(
        None, ge=1, le=65535, description="Host port (http, rpc); default: a free one."
    )
    bind_address: str | None = Field(
        None, description="Host address to publish on; default: the controller's."
    )
    limits: BackendLimits | None = None
    options: BackendOptions | None = None
    idle_timeout: float | None = Field(
        None,
        gt=0,
        le=MAX_BACKEND_TTL,
        description="Seconds without a request (health checks do not count) after "
        "which the controller stops it, with the reason `idle`. Default: the "
        "controller's BACKEND_IDLE_TIMEOUT.",
    )
    ttl: float | None = Field(
        None,
        gt=0,
        le=MAX_BACKEND_TTL,
        description="Its maximum lifetime, in seconds from its start: then the "
        "controller stops it, with the reason `expired`. Default: the controller's "
        "BACKEND_TTL.",
    )

    @field_validator("environment")
    @classmethod
    def _environment_rule(cls, value: str) -> str:
        return check_name(value)

    @field_validator("bind_address")
    @classmethod
    def _ip_address(cls, value: str | None) -> str | None:
        # Docker publishes on every interface when HostIp is no address it can parse.
        if value is not None:
            ipaddress.ip_address(value)  # ValueError: not an IPv4 or IPv6 address
        return value


class BackendPublic(_Model):
    id: str
    environment: str
    type: BackendType
    status: BackendStatus
    reason: str | None = Field(description="Why it has that status.")
    endpoint: str | None = Field(description="URL to connect to, once known.")
    token: str | None = Field(
        None, description="The backend's token: only in the reply that started it."
    )
    container_id: str | None
    created_at: float
    ready_at: float | None
    restarts: int = Field(description="Restarts after crashes, Docker's and ours.")
    exit_code: int | None = Field(description="Exit code of the last exit.")
    last_exit: ExitReason | None = Field(
        description="Why it last exited: crashed, oom_killed, stopped."
    )
    limits: BackendLimits
    options: BackendOptions
    admin: bool = Field(description="Whether it holds a controller token.")
    ttl: float | None = Field(description="Its maximum lifetime, seconds (None: none).")
    idle_timeout: float | None = Field(
        description="Seconds without a request after which it is stopped (None: never)."
    )
    started_by: str | None = Field(
        description="The admin backend whose token started it; null: the controller's "
        "token. An admin backend's token sees only the backends it started."
    )
    expires_at: float | None = Field(
        description="When that lifetime ends, Unix seconds: it is then stopped, "
        "status `stopped`, reason `expired`."
    )
    pooled: bool = Field(
        False,
        description="Pre-started in its environment's warm pool, not handed out yet "
        "(a start claims it; its token is never shown until then).",
    )
    claimed_at: float | None = Field(
        None,
        description="When a start claimed it from the pool (its lifetime and idle "
        "time count from then); null: started for its caller.",
    )


class PoolSet(_Model):
    size: int = Field(
        ge=0,
        le=MAX_POOL_SIZE,
        description="Ready, unclaimed backends to keep (0: none).",
    )
    limits: BackendLimits | None = Field(
        None,
        description="Their limits; only a start asking for exactly these claims one.",
    )
    options: BackendOptions | None = Field(
        None,
        description="Their hardening; only a start asking for exactly these claims "
        "one.",
    )


class PoolPublic(_Model):
    environment: str
    type: BackendType
    size: int = Field(description="Ready, unclaimed backends it keeps.")
    limits: BackendLimits
    options: BackendOptions
    source: Literal["environment", "default"] = Field(
        description="`environment`: the environment's own setting; `default`: the "
        "controller's POOL_SIZE."
    )
    ready: int = Field(description="Members ready to be claimed now.")
    starting: int = Field(description="Members starting (a refill under way).")


class BackendConnection(_Model):
    url: str
    token: str | None


class PackagesInstall(_Model):
    packages: PlainRequirements = Field(
        min_length=1,
        max_length=100,
        description="PEP 508 requirement specifiers (`tabulate`, `rich>=13`), with "
        "the rules of an environment's requirements; resolved together with the "
        "environment's lock and what the backend has installed already.",
    )


class InstalledPackage(_Model):
    name: str
    version: str


class InstalledPackages(_Model):
    packages: list[InstalledPackage] = Field(
        description="What was installed into the backend at run time (its "
        "environment's own packages are not listed)."
    )


class ImagePublic(_Model):
    id: str
    tags: list[str]
    size: int = Field(description="Bytes on disk (layers shared with others counted).")
    environments: list[str] = Field(
        description="The environments built into it; none: `prune` removes it."
    )


class ImagesPublic(_Model):
    images: list[ImagePublic] = Field(
        description="This controller's environment images."
    )
    total_bytes: int
    unused_bytes: int = Field(description="What `prune` would give back.")


class PruneResult(_Model):
    removed: list[ImagePublic] = Field(description="The images removed.")
    freed_bytes: int


class ErrorDetail(_Model):
    code: str
    message: str
    data: dict[str, object] = Field(default_factory=dict)


class ErrorResponse(_Model):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorResponse, "description": "invalid_request"},
    401: {"model": ErrorResponse, "description": "unauthorized"},
    404: {"model": ErrorResponse, "description": "not_found"},
    409: {"model": ErrorResponse, "description": "conflict"},
    429: {"model": ErrorResponse, "description": "quota_exceeded"},
    500: {"model": ErrorResponse, "description": "internal"},
    503: {"model": ErrorResponse, "description": "unavailable"},
}
