"""The controller's stored state as typed rows: statuses, limits and options.

The store reads and writes these; the API's models are validated from them
(``Model.model_validate(row, from_attributes=True)``), so a field has one name and one
type from the request to the database and back.
"""

import enum
import json
import time
from dataclasses import dataclass, field, fields
from typing import Final, Literal

from beephost_controller.schemas import (
    BackendLimits,
    BackendOptions,
    BackendStatus,
    BackendType,
    EnvironmentStatus,
    ExitReason,
    JobStatus,
)
from beephost_controller.schemas.egress import EgressPublic, EgressRule

#: An allow-list as a row keeps it (None: no allow-list, ``network`` says the rest).
AllowList = tuple[EgressRule, ...] | None


def allow_list_json(allow: AllowList) -> list[dict[str, object]] | None:
    return None if allow is None else [rule.model_dump() for rule in allow]


def allow_list_of(value: object) -> AllowList:
    """An allow-list from its JSON (rows written before allow-lists have none)."""
    if not isinstance(value, list):
        return None
    return tuple(EgressRule.model_validate(item) for item in value)


JobKind = Literal["build", "init", "install"]


def build_state(
    job: JobStatus | None, image: str | None, error: str | None
) -> EnvironmentStatus:
    """An environment's status, from its latest build job (what the store keeps).

    Without a job (a row written before its first job, or built directly in a test)
    the recorded outcome says it: an image is ready, an error failed.
    """
    if job == "queued":
        return "pending"
    if job == "running":
        return "building"
    if job is not None:
        return "ready" if job == "succeeded" else "failed"
    if image is not None:
        return "ready"
    return "failed" if error is not None else "pending"


@dataclass
class EnvironmentRow:
    name: str
    python: str
    requirements: list[str]
    network: bool
    admin: bool
    #: Derived by the store from the latest job (build_state); never written.
    status: EnvironmentStatus = "pending"
    lock: str | None = None
    image: str | None = None
    error: str | None = None
    job_id: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    #: Its backends' egress allow-list (None: ``network`` decides: none or full).
    egress_allow: AllowList = None

    @property
    def egress(self) -> EgressPublic:
        return EgressPublic.of(self.network, self.egress_allow)


@dataclass
class JobRow:
    id: str
    kind: JobKind
    target: str
    status: JobStatus
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class BackendConfig:
    """What a backend was started with: kept for its restarts and shown by the API.

    Stored as one JSON object in the ``options`` column (``port``, ``bind_address``,
    ``limits`` and the hardening fields side by side, as since the first schema).
    """

    #: The host port, requested or chosen: every (re)start publishes this one.
    port: int | None
    bind_address: str
    limits: BackendLimits
    #: The hardening, with ``network`` resolved from the environment's setting.
    hardening: BackendOptions
    #: Its maximum lifetime in seconds from its start (None: none).
    ttl: float | None = None
    #: The admin backend whose token started it (None: the controller's token).
    started_by: str | None = None
    #: Seconds without a request after which it is stopped (None: never).
    idle_timeout: float | None = None
    #: Pre-started in its environment's pool and not handed out yet (pool_policy.py).
    pooled: bool = False
    #: When a start claimed it from the pool (its lifetime and idleness count from
    #: then); None: started for its caller.
    claimed_at: float | None = None
    #: Its egress allow-list, the start's or its environment's (None: the
    #: hardening's ``network`` says none or full).
    egress_allow: AllowList = None
    #: The SHA-256 of its egress proxy credential (an allow-list backend's): what
    #: the proxy's configuration is rebuilt from after a restart.
    egress_token_sha256: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "port": self.port,
            "bind_address": self.bind_address,
            "limits": self.limits.model_dump(),
            "ttl": self.ttl,
            "started_by": self.started_by,
            "idle_timeout": self.idle_timeout,
            "pooled": self.pooled,
            "claimed_at": self.claimed_at,
            "egress_allow": allow_list_json(self.egress_allow),
            "egress_token_sha256": self.egress_token_sha256,
            **self.hardening.model_dump(),
        }

    @classmethod
    def from_json(cls, values: dict[str, object]) -> "BackendConfig":
        port = values.get("port")
        ttl = values.get("ttl")
        started_by = values.get("started_by")
        idle = values.get("idle_timeout")
        claimed_at = values.get("claimed_at")
        digest = values.get("egress_token_sha256")
        return cls(
            port=port if isinstance(port, int) else None,
            bind_address=str(values.get("bind_address") or "127.0.0.1"),
            limits=BackendLimits.model_validate(values.get("limits") or {}),
            hardening=BackendOptions.model_validate(
                {k: values[k] for k in BackendOptions.model_fields if k in values}
            ),
            # Rows written before lifetimes existed have none.
            ttl=float(ttl) if isinstance(ttl, int | float) else None,
            started_by=started_by if isinstance(started_by, str) else None,
            idle_timeout=float(idle) if isinstance(idle, int | float) else None,
            pooled=values.get("pooled") is True,
            claimed_at=float(claimed_at)
            if isinstance(claimed_at, int | float)
            else None,
            egress_allow=allow_list_of(values.get("egress_allow")),
            egress_token_sha256=digest if isinstance(digest, str) else None,
        )


@dataclass
class BackendRow:
    id: str
    environment: str
    type: BackendType
    status: BackendStatus
    container_name: str
    token: str
    config: BackendConfig
    reason: str | None = None
    container_id: str | None = None
    endpoint: str | None = None
    restarts: int = 0
    created_at: float = field(default_factory=time.time)
    ready_at: float | None = None
    updated_at: float = field(default_factory=time.time)
    #: Exit code of the container's last exit, and why it exited.
    exit_code: int | None = None
    last_exit: ExitReason | None = None
    #: Restarts the controller made itself (Docker's own are in the container).
    controller_restarts: int = 0
    #: sha256 of the controller token an admin backend holds (None: no access).
    controller_token_sha256: str | None = None

    # The API's names for parts of the row (BackendPublic reads them).
    @property
    def limits(self) -> BackendLimits:
        return self.config.limits

    @property
    def options(self) -> BackendOptions:
        return self.config.hardening

    @property
    def admin(self) -> bool:
        return self.controller_token_sha256 is not None

    @property
    def ttl(self) -> float | None:
        return self.config.ttl

    @property
    def started_by(self) -> str | None:
        return self.config.started_by

    @property
    def idle_timeout(self) -> float | None:
        return self.config.idle_timeout

    @property
    def pooled(self) -> bool:
        return self.config.pooled

    @property
    def claimed_at(self) -> float | None:
        return self.config.claimed_at

    @property
    def egress(self) -> EgressPublic:
        """The egress policy in effect (BackendPublic's ``egress``)."""
        return EgressPublic.of(
            bool(self.config.hardening.network), self.config.egress_allow
        )

    @property
    def handed_out_at(self) -> float:
        """When its caller got it: its claim from a pool, else its start."""
        return self.created_at if self.claimed_at is None else self.claimed_at

    @property
    def expires_at(self) -> float | None:
        ttl = self.config.ttl
        return None if ttl is None else self.handed_out_at + ttl


@dataclass
class PoolRow:
    """An environment's pool setting for one backend type: how many ready, unclaimed
    backends to keep, started with these limits and options."""

    environment: str
    type: BackendType
    size: int
    limits: BackendLimits = field(default_factory=BackendLimits)
    options: BackendOptions = field(default_factory=BackendOptions)
    updated_at: float = field(default_factory=time.time)

    def config_json(self) -> str:
        return json.dumps(
            {"limits": self.limits.model_dump(), "options": self.options.model_dump()}
        )

    @classmethod
    def from_columns(
        cls, environment: str, type: BackendType, size: int, config: str, at: float
    ) -> "PoolRow":
        values = json.loads(config)
        return cls(
            environment,
            type,
            size,
            BackendLimits.model_validate(values.get("limits") or {}),
            BackendOptions.model_validate(values.get("options") or {}),
            at,
        )


@dataclass
class RuntimeRow:
    python: str
    image: str
    image_id: str
    version: str
    source: str
    updated_at: float = field(default_factory=time.time)


class _Unset(enum.Enum):
    UNSET = 0


UNSET: Final = _Unset.UNSET


@dataclass(frozen=True)
class BackendUpdate:
    """The columns of a backend row one write changes (SqliteStore.update_backend);
    the others stay ``UNSET``."""

    status: BackendStatus | _Unset = UNSET
    reason: str | _Unset | None = UNSET
    container_id: str | _Unset | None = UNSET
    endpoint: str | _Unset | None = UNSET
    config: BackendConfig | _Unset = UNSET
    restarts: int | _Unset = UNSET
    created_at: float | _Unset = UNSET
    ready_at: float | _Unset | None = UNSET
    exit_code: int | _Unset | None = UNSET
    last_exit: ExitReason | _Unset | None = UNSET
    controller_restarts: int | _Unset = UNSET

    def columns(self) -> dict[str, object]:
        """Column -> value of what is set (``config`` is the ``options`` column)."""
        values: dict[str, object] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is UNSET:
                continue
            if isinstance(value, BackendConfig):
                values["options"] = json.dumps(value.to_json())
            else:
                values[item.name] = value
        return values
