"""Backends and the packages installed into them: request and reply models."""

import ipaddress

from pydantic import ConfigDict, Field, field_validator, model_validator

from beephost_controller.requirements import PlainRequirements
from beephost_controller.schemas import (
    MAX_BACKEND_TTL,
    NAME_SCHEMA,
    ApiModel,
    BackendLimits,
    BackendOptions,
    BackendStatus,
    BackendType,
    ExitReason,
    check_name,
)
from beephost_controller.schemas.egress import EgressPolicy, EgressPublic


class BackendCreate(ApiModel):
    # The schema says what _one_network checks: not an allow-list with a network.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "not": {
                "required": ["egress", "options"],
                "properties": {
                    "egress": {"type": "object"},
                    "options": {
                        "type": "object",
                        "required": ["network"],
                        "properties": {"network": {"type": "boolean"}},
                    },
                },
            }
        },
    )

    environment: str = Field(
        json_schema_extra=NAME_SCHEMA, description="Environment to run."
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
    egress: EgressPolicy | None = Field(
        None,
        description="An allow-list replacing its environment's policy (not with "
        "`options.network`, which replaces it with none or the whole network).",
    )
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

    @model_validator(mode="after")
    def _one_network(self) -> "BackendCreate":
        if (
            self.egress is not None
            and self.options
            and self.options.network is not None
        ):
            raise ValueError(
                "options.network and egress contradict each other: give one"
            )
        return self

    @field_validator("bind_address")
    @classmethod
    def _ip_address(cls, value: str | None) -> str | None:
        # Docker publishes on every interface when HostIp is no address it can parse.
        if value is not None:
            ipaddress.ip_address(value)  # ValueError: not an IPv4 or IPv6 address
        return value


class BackendPublic(ApiModel):
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
    egress: EgressPublic = Field(
        description="Its egress policy in effect: the start's, else its "
        "environment's (`options.network` replaces it with none or full)."
    )
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


class BackendConnection(ApiModel):
    url: str
    token: str | None


class PackagesInstall(ApiModel):
    packages: PlainRequirements = Field(
        min_length=1,
        max_length=100,
        description="PEP 508 requirement specifiers (`tabulate`, `rich>=13`), with "
        "the rules of an environment's requirements; resolved together with the "
        "environment's lock and what the backend has installed already.",
    )


class InstalledPackage(ApiModel):
    name: str
    version: str


class InstalledPackages(ApiModel):
    packages: list[InstalledPackage] = Field(
        description="What was installed into the backend at run time (its "
        "environment's own packages are not listed)."
    )
