"""Warm pools, decided: which pools exist, what a refill starts and removes, which
start a member may serve, and what a claim changes. Pure functions of plain data;
warm_pools.py applies them.

A pool keeps ``size`` backends of one environment and type started, ready and
unclaimed. A member is a backend row like any other, marked ``pooled`` in its config:
it has no lifetime, idle timeout or owner, and has never run user code (the only
request it ever got is the controller's readiness probe). A start that asks for nothing
a member was not started with (no token, port or bind address of its own, the pool's
limits and options) claims one: the row's config is rewritten in one compare-and-set
(store.claim_backend), so no member is handed out twice.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from beephost_controller.rows import (
    BackendConfig,
    BackendRow,
    EnvironmentRow,
    PoolRow,
)
from beephost_controller.schemas import (
    BACKEND_TYPES,
    BackendLimits,
    BackendOptions,
    BackendType,
    PoolSource,
)
from beephost_controller.settings import Settings
from beephost_controller.starts import BackendRequest, lifetimes, resolved_options


@dataclass(frozen=True)
class Pool:
    """One pool in effect: an environment's own setting, or the controller's default."""

    environment: str
    type: BackendType
    size: int
    limits: BackendLimits
    options: BackendOptions
    source: PoolSource
    #: The environment's network setting (what ``options.network=None`` means).
    network: bool
    #: Whether its environment is built (members can start).
    startable: bool = True

    def request(self) -> BackendRequest:
        """The start that makes one of its members."""
        return BackendRequest(
            environment=self.environment,
            type=self.type,
            limits=self.limits,
            options=self.options,
            pooled=True,
        )

    def made(self, row: BackendRow) -> bool:
        """Whether ``row`` was started as this pool's member is now (a changed
        setting makes the old members obsolete)."""
        hardening = resolved_options(self.options, self.network)
        return row.config.limits == self.limits and row.config.hardening == hardening


def effective_pools(
    environments: Iterable[EnvironmentRow],
    settings: Iterable[PoolRow],
    defaults: Mapping[BackendType, int],
) -> list[Pool]:
    """Every pool in effect: each environment's own settings, and the controller's
    defaults for the types it has none for (never for the admin environment, whose
    members would hold controller tokens unasked)."""
    own = {(row.environment, row.type): row for row in settings}
    pools = []
    for env in environments:
        for kind in BACKEND_TYPES:
            row = own.get((env.name, kind))
            if row is not None:
                pools.append(
                    Pool(
                        env.name,
                        kind,
                        row.size,
                        row.limits,
                        row.options,
                        "environment",
                        env.network,
                        _built(env),
                    )
                )
            elif not env.admin and defaults.get(kind, 0) > 0:
                pools.append(
                    Pool(
                        env.name,
                        kind,
                        defaults[kind],
                        BackendLimits(),
                        BackendOptions(),
                        "default",
                        env.network,
                        _built(env),
                    )
                )
    return pools


def _built(env: EnvironmentRow) -> bool:
    return env.status == "ready" and env.image is not None


def serves(pool: Pool, request: BackendRequest) -> bool:
    """Whether a member of ``pool`` is exactly what ``request`` would start.

    A token, port or bind address of the caller's own cannot be given to a running
    container (its token is fixed at its start, and never shown before a claim), so
    such a start is a cold one.
    """
    return (
        (request.environment, request.type) == (pool.environment, pool.type)
        and not request.pooled
        and request.token is None
        and request.port is None
        and request.bind_address is None
        and request.egress is None
        and request.limits == pool.limits
        and request.options == pool.options
    )


def members(pool: Pool, rows: Iterable[BackendRow]) -> list[BackendRow]:
    """The pool's unclaimed backends that are not stopped."""
    return [
        row
        for row in rows
        if row.pooled
        and row.status != "stopped"
        and (row.environment, row.type) == (pool.environment, pool.type)
    ]


def strays(pools: Iterable[Pool], rows: Iterable[BackendRow]) -> list[BackendRow]:
    """Unclaimed backends no pool in effect has (its setting or environment gone)."""
    keys = {(pool.environment, pool.type) for pool in pools}
    return [
        row
        for row in rows
        if row.pooled
        and row.status != "stopped"
        and (row.environment, row.type) not in keys
    ]


def leftovers(rows: Iterable[BackendRow]) -> list[BackendRow]:
    """Unclaimed backends already stopped (by a controller's shutdown): their rows say
    nothing anyone needs."""
    return [row for row in rows if row.pooled and row.status == "stopped"]


@dataclass(frozen=True)
class Refill:
    """What one pass does to a pool: start this many members, remove these."""

    start: int
    remove: tuple[str, ...]


#: Which members a shrinking pool removes first: those not ready yet, then the newest.
_REMOVAL_ORDER = {"exited": 0, "unhealthy": 1, "starting": 2, "ready": 3}


def refill(pool: Pool, current: Sequence[BackendRow], room: int | None) -> Refill:
    """Bring a pool to its size.

    Members that exited are removed (none ever served anyone: a fresh one is as good),
    and so are members started with another setting and the ones over the size; as
    many are started as are missing, within ``room`` (what MAX_BACKENDS still allows;
    None: no limit).
    """
    obsolete = [row for row in current if row.status == "exited" or not pool.made(row)]
    kept = [row for row in current if row not in obsolete]
    kept.sort(key=lambda row: (_REMOVAL_ORDER.get(row.status, 0), -row.created_at))
    excess = max(0, len(kept) - pool.size)
    remove = obsolete + kept[:excess]
    missing = max(0, pool.size - (len(kept) - excess)) if pool.startable else 0
    if room is not None:
        missing = min(missing, max(0, room + len(remove)))
    return Refill(start=missing, remove=tuple(row.id for row in remove))


def claimed(
    config: BackendConfig, request: BackendRequest, settings: Settings, now: float
) -> BackendConfig:
    """A member's config once ``request`` claimed it: its caller's lifetime, idle
    timeout and identity, counted from ``now``."""
    ttl, idle_timeout = lifetimes(request, settings)
    return replace(
        config,
        pooled=False,
        claimed_at=now,
        ttl=ttl,
        idle_timeout=idle_timeout,
        started_by=request.started_by,
    )
