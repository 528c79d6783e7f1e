"""A backend start before any engine: what is asked, what is drawn, what is decided.

``BackendRequest`` (what a caller asks), ``Minted`` (what a start draws at random or
reads from the host), the lifetimes and hardening every engine resolves the same way,
and ``BackendPlan``: what an engine's ``plan`` hands back to the use cases (the row
to record, the secrets to redact) with its own layout inside, opaque to them. Pure:
no I/O, nothing of an engine.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field

from beephost_controller.rows import (
    AllowList,
    BackendConfig,
    BackendRow,
    EnvironmentRow,
)
from beephost_controller.schemas import BackendLimits, BackendOptions, BackendType
from beephost_controller.schemas.egress import EgressPolicy
from beephost_controller.settings import Settings
from beephost_protocol.errors import InvalidRequest


@dataclass(frozen=True)
class BackendRequest:
    environment: str
    type: BackendType
    token: str | None = None
    port: int | None = None
    bind_address: str | None = None
    limits: BackendLimits = field(default_factory=BackendLimits)
    #: ``network=None``: the environment's setting.
    options: BackendOptions = field(default_factory=BackendOptions)
    #: Its maximum lifetime in seconds (None: the controller's BACKEND_TTL).
    ttl: float | None = None
    #: The admin backend whose token asks (None: the controller's token).
    started_by: str | None = None
    #: Seconds without a request before it is stopped (None: the controller's
    #: BACKEND_IDLE_TIMEOUT).
    idle_timeout: float | None = None
    #: A pool's member: no lifetime, idle timeout or owner until a start claims it.
    pooled: bool = False
    #: An allow-list replacing the environment's policy (``options.network`` is
    #: None then).
    egress: EgressPolicy | None = None


#: What every backend's id starts with (``Minted.draw``).
BACKEND_ID_PREFIX = "b-"


def new_backend_id() -> str:
    """A backend id, drawn at random."""
    return f"{BACKEND_ID_PREFIX}{uuid.uuid4().hex[:12]}"


def is_backend_id(value: str) -> bool:
    """Whether ``value`` is a backend's id, not another label value under the same key
    (a backend image labels ``io.beephost.backend`` with its kind)."""
    return value.startswith(BACKEND_ID_PREFIX) and len(value) > len(BACKEND_ID_PREFIX)


@dataclass(frozen=True)
class Minted:
    """What a start draws at random or reads from the host, before it is planned."""

    backend_id: str
    token: str
    controller_token: str
    #: The controller's effective uid and gid (the socket directory's ownership).
    euid: int
    egid: int
    #: The backend's egress proxy credential (used by an allow-list backend only).
    egress_token: str

    @classmethod
    def draw(cls, request: BackendRequest, euid: int, egid: int) -> "Minted":
        return cls(
            backend_id=new_backend_id(),
            token=request.token or secrets.token_urlsafe(24),
            controller_token=secrets.token_urlsafe(32),
            euid=euid,
            egid=egid,
            egress_token=secrets.token_urlsafe(32),
        )


@dataclass(frozen=True)
class BackendPlan:
    """A start as an engine planned it: what the use cases record, and the engine's
    own layout of it, which they hand back to ``BackendEngine.launch`` untouched."""

    #: The row to record before anything is made (status ``starting``).
    row: BackendRow
    #: The controller token an admin backend holds (a secret: never in a log).
    controller_token: str | None
    #: The engine's decisions (Docker: ``engine.docker_plan.DockerPlan``).
    layout: object


def token_digest(token: str) -> str:
    """A token's hex SHA-256: what the store keeps of an admin backend's controller
    token, and all a backend container is given of its own (TOKEN_SHA256)."""
    return hashlib.sha256(token.encode()).hexdigest()


def resolved_options(options: BackendOptions, env_network: bool) -> BackendOptions:
    """A start's hardening with ``network`` resolved: its own, else its environment's
    (what the row keeps, and what a pool member is compared by)."""
    network = env_network if options.network is None else options.network
    return options.model_copy(update={"network": network})


def start_egress(
    request: BackendRequest, env: EnvironmentRow
) -> tuple[bool, AllowList]:
    """(network, allow-list) of a start: its own allow-list, else its own
    ``options.network`` (none or full), else its environment's policy."""
    if request.egress is not None:
        return False, tuple(request.egress.allow)
    if request.options.network is not None:
        return request.options.network, None
    return env.network, env.egress_allow


def lifetimes(
    request: BackendRequest, settings: Settings
) -> tuple[float | None, float | None]:
    """(ttl, idle timeout) of a backend handed to ``request``'s caller: its own, else
    the controller's defaults."""
    return (
        _chosen(request.ttl, settings.backend_ttl),
        _chosen(request.idle_timeout, settings.backend_idle_timeout),
    )


def _chosen(requested: float | None, default: float) -> float | None:
    """A start's own limit, else the controller's (whose 0 means none)."""
    return requested if requested is not None else (default or None)


def ready_image(env: EnvironmentRow) -> str:
    """The environment's image, if a backend may start on it.

    Raises:
        InvalidRequest: The environment is not ready.
    """
    if env.status != "ready" or env.image is None:
        raise InvalidRequest(
            f"environment {env.name!r} is {env.status}, not ready",
            {"environment": env.name, "status": env.status},
        )
    return env.image


def new_row(
    request: BackendRequest,
    environment: EnvironmentRow,
    settings: Settings,
    minted: Minted,
    *,
    name: str,
    port: int | None,
    bind_address: str,
    controller_token: str | None,
) -> BackendRow:
    """The row a start records before its engine makes anything (status
    ``starting``): the request's limits, resolved hardening and lifetimes (a pool
    member gets none until it is claimed), and where the engine reaches it."""
    ttl, idle_timeout = (None, None) if request.pooled else lifetimes(request, settings)
    network, allow = start_egress(request, environment)
    return BackendRow(
        id=minted.backend_id,
        environment=environment.name,
        type=request.type,
        status="starting",
        container_name=name,
        token=minted.token,
        config=BackendConfig(
            port,
            bind_address,
            request.limits,
            resolved_options(request.options, network),
            ttl=ttl,
            started_by=None if request.pooled else request.started_by,
            idle_timeout=idle_timeout,
            pooled=request.pooled,
            egress_allow=allow,
            egress_token_sha256=None
            if allow is None
            else token_digest(minted.egress_token),
        ),
        controller_token_sha256=controller_token and token_digest(controller_token),
    )
