"""Warm pools, applied: a start claims a ready member or starts cold; a filler thread
keeps every pool at its size (pool_policy.py decides what each pass does).

Members are rows in the store like every backend, so a restarted controller adopts
them as it adopts any container (reconcile.py), and the filler carries on from what
the rows say.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from beephost_controller.backends.lifecycle import BackendService
from beephost_controller.backends.pool_policy import (
    Pool,
    claimed,
    effective_pools,
    leftovers,
    members,
    refill,
    serves,
    strays,
)
from beephost_controller.ports import ContainerEngineError
from beephost_controller.rows import BackendRow, BackendUpdate, PoolRow
from beephost_controller.schemas import BackendLimits, BackendOptions, BackendType
from beephost_controller.starts import BackendRequest
from beephost_protocol.errors import BeepHostError, NotFound

logger = logging.getLogger(__name__)

_CLAIM_PROBE_TRIES = 3

#: Seconds between two passes while a member is starting (its readiness is watched).
STARTING_INTERVAL = 0.2


@dataclass(frozen=True, kw_only=True)
class PoolState(Pool):
    """A pool in effect and its members now (what the API shows of it)."""

    ready: int
    starting: int


class Pools:
    """Claims from warm pools, and the filler that keeps them full.

    A member is probed (the backend service's readiness probe) once a claim has won
    it, so a claim never returns one that died since the last sweep.
    """

    def __init__(
        self, backends: BackendService, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.backends = backends
        self.store = backends.store
        self.settings = backends.settings
        self.metrics = backends.metrics
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        #: Each pool's last refused start: a refusal that lasts (an allow-list no
        #: engine enforces yet, a missing registry) is logged once, not every pass.
        self._refusals: dict[tuple[str, str], str] = {}
        #: The filler's pass and a scrape both refresh the gauges: one at a time.
        self._gauges = threading.Lock()

    # -- settings ------------------------------------------------------------------------

    def pools(self, environment: str | None = None) -> list[Pool]:
        environments = self.store.environments()
        if environment is not None:
            environments = [env for env in environments if env.name == environment]
        return effective_pools(
            environments, self.store.pools(environment), self.settings.pool_size
        )

    def states(self, environment: str | None = None) -> list[PoolState]:
        rows = self.store.backends(environment)
        states = []
        for pool in self.pools(environment):
            current = members(pool, rows)
            ready = sum(row.status == "ready" for row in current)
            starting = sum(row.status in ("starting", "unhealthy") for row in current)
            states.append(PoolState(**vars(pool), ready=ready, starting=starting))
        return states

    def state(self, environment: str, kind: BackendType) -> PoolState:
        for state in self.states(environment):
            if state.type == kind:
                return state
        raise NotFound(
            f"environment {environment!r} has no {kind} pool",
            {"environment": environment, "type": kind},
        )

    def configure(
        self,
        environment: str,
        kind: BackendType,
        size: int,
        limits: BackendLimits | None = None,
        options: BackendOptions | None = None,
    ) -> PoolState:
        """Set an environment's pool of a type (size 0 keeps none); the filler
        starts or removes members at once."""
        self.store.existing_environment(environment)
        self.store.put_pool(
            PoolRow(
                environment,
                kind,
                size,
                limits or BackendLimits(),
                options or BackendOptions(),
            )
        )
        self.wake()
        return self.state(environment, kind)

    def reset(self, environment: str, kind: BackendType) -> None:
        """Forget an environment's own setting (the controller's default applies)."""
        self.store.existing_environment(environment)
        self.store.delete_pool(environment, kind)
        self.wake()

    def drain(self, environment: str) -> int:
        """Remove every unclaimed member of an environment (before it is deleted)."""
        removed = 0
        for row in self.store.backends(environment):
            if row.pooled and self._remove(row):
                removed += 1
        return removed

    # -- claims --------------------------------------------------------------------------

    def start(self, request: BackendRequest) -> BackendRow:
        """A backend for ``request``: a ready pool member if one serves it, else a cold
        start."""
        row = self.claim(request)
        if row is None:
            return self.backends.start(request)
        return row

    def claim(self, request: BackendRequest) -> BackendRow | None:
        """Hand out a ready member of a pool that serves ``request``, if there is one."""
        pool = next(
            (p for p in self.pools(request.environment) if serves(p, request)), None
        )
        if pool is None:
            return None
        for row in members(pool, self.store.backends(request.environment)):
            if row.status != "ready" or not pool.made(row):
                continue
            config = claimed(row.config, request, self.settings, self.clock())
            if not self.store.claim_backend(row.id, config):
                continue  # another start's
            # Probed once it is ours: concurrent starts each probe their own member.
            if self._answers(row):
                self.metrics.pool_claims.labels(request.type, "hit").inc()
                self.wake()
                return self.backends.get_row(row.id)
            # Died or stalled since the last sweep: back into the pool, not ready
            # until the filler's next look finds it answering (else it is replaced).
            logger.warning("pool member %s did not answer its claim's probe", row.id)
            self.store.update_backend(
                row.id, BackendUpdate(config=row.config, status="starting")
            )
        self.metrics.pool_claims.labels(request.type, "miss").inc()
        self.wake()
        return None

    def _answers(self, row: BackendRow) -> bool:
        if row.endpoint is None:
            return False
        # A few tries of the probe's 1 s: on a loaded host a live member can be slow
        # to answer once, and a member wrongly turned away costs its claimer a cold
        # start (seconds under that load) where one that died costs it these tries.
        return any(self.backends.answers(row) for _ in range(_CLAIM_PROBE_TRIES))

    # -- the filler ----------------------------------------------------------------------

    def wake(self) -> None:
        """Run a pass now (a claim took a member, or a setting changed)."""
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Fill the pools until ``stop`` is set: a pass on every wake, every
        supervise interval, and often while members are starting."""
        self._stop = stop
        while not stop.is_set():
            starting = False
            try:
                starting = self.fill()
            except Exception:
                logger.exception("filling the pools failed")
            interval = (
                STARTING_INTERVAL if starting else self.settings.supervise_interval
            )
            self._wake.wait(interval)
            self._wake.clear()

    def fill(self) -> bool:
        """One pass: remove what no pool wants, start what pools miss, and look at
        members still starting.

        Returns:
            Whether a member is still starting.
        """
        pools = self.pools()
        rows = self.store.backends()
        for row in strays(pools, rows):
            self._remove(row)
        for row in leftovers(rows):
            self.store.delete_backend(row.id)
        starting = False
        for pool in pools:
            plan = refill(pool, members(pool, rows), self.backends.room())
            for backend_id in plan.remove:
                member = self.store.backend(backend_id)
                if member is not None:
                    self._remove(member)
            for _ in range(plan.start):
                if self._stop.is_set() or not self._start_member(pool):
                    break
            for row in members(pool, self.store.backends(pool.environment)):
                if row.status in ("starting", "unhealthy"):
                    starting = self._watch(row) or starting
        self.refresh_gauges()
        return starting

    def _start_member(self, pool: Pool) -> bool:
        key = (pool.environment, pool.type)
        try:
            row = self.backends.start(pool.request())
        except BeepHostError as exc:
            said = self._refusals.get(key)
            self._refusals[key] = str(exc)
            logger.log(
                logging.DEBUG if said == str(exc) else logging.WARNING,
                "could not start a member of the %s pool of %s: %s",
                pool.type,
                pool.environment,
                exc,
            )
            return False
        if self._refusals.pop(key, None) is not None:
            logger.info("pool %s/%s: starts again", pool.environment, pool.type)
        logger.info("pool %s/%s: started %s", pool.environment, pool.type, row.id)
        return True

    def _watch(self, row: BackendRow) -> bool:
        """Refresh a starting member; whether it still is."""
        try:
            return self.backends.refresh(row.id).status in ("starting", "unhealthy")
        except NotFound:
            return False  # claimed and stopped meanwhile
        except ContainerEngineError as exc:
            logger.warning("pool member %s: %s", row.id, exc)
            return True

    def _remove(self, row: BackendRow) -> bool:
        """Stop an unclaimed member and delete its row (it never served anyone)."""
        # Taken out of the pool first, in the claims' compare-and-set: claimed since
        # it was read, it is not ours to remove; taken, no claim can have it.
        if not self.store.claim_backend(row.id, replace(row.config, pooled=False)):
            return False
        try:
            self.backends.stop(row.id)
        except (BeepHostError, ContainerEngineError) as exc:
            logger.warning("could not remove pool member %s: %s", row.id, exc)
            return False
        return True

    def refresh_gauges(self) -> None:
        """The pool gauges from the store as it is now: each pass ends with this, and
        so does a scrape, which then says what the API says (a member that became
        ready during the pass is counted before the pass ends)."""
        with self._gauges:
            self._set_gauges()

    def _set_gauges(self) -> None:
        self.metrics.pool_members.clear()
        self.metrics.pool_size.clear()
        for pool in self.states():
            gauge = self.metrics.pool_members
            gauge.labels(pool.environment, pool.type, "ready").set(pool.ready)
            gauge.labels(pool.environment, pool.type, "starting").set(pool.starting)
            self.metrics.pool_size.labels(pool.environment, pool.type).set(pool.size)
