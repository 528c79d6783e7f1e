"""Backends' lifecycle on one engine: start (the engine plans, the row is recorded,
the engine launches), status, restarts, stop, logs.

A start is recorded in the store (status ``starting``, its sandbox's name fixed)
BEFORE the engine makes anything, and the sandbox carries the row's id: a crash at any
point leaves either a row whose sandbox is missing (marked exited, reason
``missing``) or a sandbox whose row exists (adopted); a sandbox without a row (its row
never committed, or deleted) is an orphan and is removed (reconcile.py). Everything of
where backends run is the engine's (``ports.BackendEngine``): this module never names
a container, a network or a port of the host.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from beephost_controller.backends.logs import BackendLogs, keep_tail, read_logs
from beephost_controller.backends.reconcile import reconcile
from beephost_controller.backends.status import (
    SHUTDOWN,
    STOPPING,
    exit_reason,
    status_of,
)
from beephost_controller.backends.supervise import Supervision, supervise
from beephost_controller.egress import check_start
from beephost_controller.metrics import ControllerMetrics
from beephost_controller.ports import (
    BackendEngine,
    ContainerEngineError,
    ContainerState,
    EgressRefusal,
    LaunchFailed,
)
from beephost_controller.redact import Redactor
from beephost_controller.rows import BackendRow, BackendUpdate
from beephost_controller.schemas import ExitReason
from beephost_controller.settings import Settings
from beephost_controller.starts import BackendRequest, Minted, start_egress
from beephost_controller.store import SqliteStore
from beephost_protocol.errors import (
    NotFound,
    QuotaExceeded,
    Unavailable,
)

logger = logging.getLogger(__name__)


class BackendService:
    """Backends' lifecycle: start (planned, recorded, launched), status, restarts,
    stop.

    Args:
        engine: Where backends run.
        probe: The controller's readiness probe of a backend's URL with its token.
        add_secret: Told every secret a start mints (the backend's token, and an
            admin backend's controller token): the controller's Redactor keeps them
            out of every log, a pool member's from its start on.
        redact: Takes the secrets out of the logs a stop keeps (the controller's
            Redactor; credential shapes only if omitted).
        secret_exists: Whether a stored secret (an egress policy's) exists; none
            does if omitted.
    """

    def __init__(
        self,
        settings: Settings,
        store: SqliteStore,
        engine: BackendEngine,
        metrics: ControllerMetrics,
        *,
        clock: Callable[[], float] = time.time,
        probe: Callable[[str, str | None], bool] | None = None,
        add_secret: Callable[[str], None] = lambda secret: None,
        redact: Callable[[str], str] | None = None,
        secret_exists: Callable[[str], bool] = lambda name: False,
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.metrics = metrics
        self.clock = clock
        self.probe = probe
        self.add_secret = add_secret
        self.redact = redact or Redactor().redact
        self.secret_exists = secret_exists
        #: What each backend's last health check said of its idleness (refresh).
        self._idle: dict[str, float | None] = {}
        #: Held from counting the backends to recording a new one (MAX_BACKENDS).
        self._admission = threading.Lock()
        #: Backends this process is launching: no sandbox yet is not a missing one.
        self._launching: set[str] = set()

    def _logs(self) -> BackendLogs:
        return BackendLogs(self.engine, self.store, self.redact, self.clock)

    # -- start ---------------------------------------------------------------------------

    def start(self, request: BackendRequest) -> BackendRow:
        env = self.store.existing_environment(request.environment)
        check_start(
            start_egress(request, env)[1],
            self.settings.egress_internal_ranges,
            self.secret_exists,
        )
        # Before the plan, which may begin work on the engine (Docker: a copy of the
        # image into code volumes): a start refused for room begins nothing (the
        # check that counts is below).
        self._check_room()
        held = {
            row.config.port: row.id
            for row in self.store.backends()
            if row.config.port is not None
        }
        minted = Minted.draw(request, os.geteuid(), os.getegid())
        planned = self.engine.plan(request, env, minted, held)
        row = planned.row
        self.add_secret(row.token)
        if planned.controller_token is not None:
            self.add_secret(planned.controller_token)
        try:
            with self._admission:
                self._check_room()
                # Recorded before the sandbox exists (crash safety).
                self.store.insert_backend(row)
        except BaseException:
            self.engine.release(planned)
            raise
        self._launching.add(row.id)
        try:
            self.engine.launch(
                planned, lambda update: self.store.update_backend(row.id, update)
            )
        except LaunchFailed as failed:
            if failed.undone:  # nothing runs: no row stays behind
                self.store.delete_backend(row.id)
            else:  # what was made is left to reconciliation, which needs the row
                why = failed.__cause__ or failed.error
                update = BackendUpdate(status="exited", reason=f"failed: {why}")
                self.store.update_backend(row.id, update)
            raise failed.error from failed.__cause__
        finally:
            self._launching.discard(row.id)
        self._undo_if_stopped_meanwhile(row)
        return self.refresh(row.id)

    def _undo_if_stopped_meanwhile(self, launched: BackendRow) -> None:
        """A backend stopped while it launched (its lifetime ended, a DELETE came)
        may have had part of its sandbox made after that stop removed it: it goes
        now, or it would run with no row to say so until the next reconciliation."""
        row = self.store.backend(launched.id)
        if row is not None and row.status != "stopped":
            return
        logger.info("backend %s was stopped while it started: removing it", launched.id)
        try:
            self.engine.remove(row or launched)
        except ContainerEngineError as exc:
            # Left to reconciliation: a retired row's sandbox, or an orphan's.
            logger.warning("could not remove backend %s: %s", launched.id, exc)

    def room(self) -> int | None:
        """How many more backends MAX_BACKENDS allows now (None: no limit)."""
        limit = self.settings.max_backends
        if not limit:
            return None
        live = sum(row.status != "stopped" for row in self.store.backends())
        return max(0, limit - live)

    def _check_room(self) -> None:
        if self.room() == 0:
            limit = self.settings.max_backends
            raise QuotaExceeded(
                f"the controller runs its maximum of {limit} backends (pooled ones "
                "included): stop one first",
                {"max_backends": limit},
            )

    # -- status --------------------------------------------------------------------------

    def refresh(self, backend_id: str) -> BackendRow:
        row = self.get_row(backend_id)
        if row.status == "stopped":
            return row
        state = self.engine.state(row)
        if state is None and backend_id in self._launching:
            # Its sandbox is still being made (on Kubernetes an image is published
            # first, for seconds): starting, as recorded, not missing.
            return row
        self._idle[backend_id] = state.idle_seconds if state is not None else None
        status, reason = status_of(state)
        update = BackendUpdate()
        if state is not None and status == "starting" and reason is None:
            # Docker's first health check comes late: our own probe may know better,
            # and what it found holds until Docker has a verdict or the container
            # restarts.
            restarted = row.controller_restarts + state.restart_count != row.restarts
            if (row.status == "ready" and not restarted) or self._answers(row, state):
                status = "ready"
        if state is not None:
            if row.container_id is None:
                update = replace(update, container_id=state.id)
            restarts = row.controller_restarts + state.restart_count
            if restarts != row.restarts:
                update = replace(update, restarts=restarts)
            if state.restart_count > row.restarts - row.controller_restarts:
                # Docker restarted it between two looks (on-failure: a non-zero
                # exit); it resets the exit code, so the code is not known.
                last: ExitReason = "oom_killed" if state.oom_killed else "crashed"
                update = replace(update, last_exit=last, exit_code=None)
            endpoint = self.engine.endpoint(row, state)
            if endpoint != row.endpoint:
                update = replace(update, endpoint=endpoint)
            if status == "exited":
                why = exit_reason(state)
                if (state.exit_code, why) != (row.exit_code, row.last_exit):
                    update = replace(update, exit_code=state.exit_code, last_exit=why)
        if (status, reason) != (row.status, row.reason):
            update = replace(update, status=status, reason=reason)
            if status == "ready" and row.ready_at is None:
                now = self.clock()
                update = replace(update, ready_at=now)
                self.metrics.start_to_ready.labels(row.type).observe(
                    now - row.created_at
                )
        if update.columns():
            self.store.update_backend(backend_id, update)
            row = self.get_row(backend_id)
        return row

    def _answers(self, row: BackendRow, state: ContainerState) -> bool:
        endpoint = self.engine.endpoint(row, state)
        return bool(endpoint and self.probe is not None and self.answers(row))

    def answers(self, row: BackendRow) -> bool:
        """Whether the backend answers the readiness probe (True without a probe)."""
        if self.probe is None:
            return True
        return self.probe(self.engine.probe_endpoint(row), row.token)

    def get_row(self, backend_id: str) -> BackendRow:
        row = self.store.backend(backend_id)
        if row is None:
            raise NotFound(f"no backend {backend_id!r}", {"backend": backend_id})
        return row

    def all(self) -> list[BackendRow]:
        """Every backend, refreshed. One removed while the list is read (a stop, a
        pool shrinking) is left out: the listing must not fail for it."""
        rows = []
        with self.engine.sweep():
            for row in self.store.backends():
                try:
                    rows.append(self.refresh(row.id))
                except NotFound:
                    continue
        return rows

    def wait_change(
        self,
        backend_id: str,
        timeout: float,
        *,
        seen: str | None = None,
        interval: float = 0.05,
    ) -> BackendRow:
        """The backend once its status differs from ``seen`` (default: its status
        now), or at ``timeout``. A client passes the status it last saw, so a change
        that happened between two of its requests returns at once."""
        deadline = time.monotonic() + timeout
        row = self.refresh(backend_id)
        if seen is not None and row.status != seen:
            return row
        first = (row.status, row.reason)
        while (row.status, row.reason) == first and time.monotonic() < deadline:
            time.sleep(interval)
            row = self.refresh(backend_id)
        return row

    def egress_refusals(
        self, backend_id: str, limit: int = 10
    ) -> tuple[BackendRow, list[EgressRefusal]]:
        """The backend and the last ``limit`` connections its egress proxy refused.

        Raises:
            NotFound: No backend by that id.
        """
        row = self.get_row(backend_id)
        return row, self.engine.egress_refusals(row)[-limit:]

    def logs(self, backend_id: str, tail: int) -> str:
        """Its sandbox's last ``tail`` lines, or those kept at its stop (logs.py)."""
        return read_logs(self._logs(), self.get_row(backend_id), tail)

    # -- restart policy ------------------------------------------------------------------

    def supervise(self) -> list[str]:
        """One sweep of the supervisor (supervise.py); the ids of the backends it
        restarted."""
        return supervise(
            Supervision(
                self.store,
                self.engine,
                self.metrics,
                self.clock,
                self.settings.restart_limit,
                refresh=self.refresh,
                retire=self.retire,
                idle_seconds=self.idle_seconds,
            )
        )

    def idle_seconds(self, backend_id: str) -> float | None:
        """What the backend's last health check said of its idleness (None: not
        known)."""
        return self._idle.get(backend_id)

    def memory_used(self, backend_id: str) -> int | None:
        """The bytes of memory the backend uses now, as its engine measures them;
        None when not known (stopped or exited, or the engine cannot tell)."""
        row = self.get_row(backend_id)
        if row.status in ("stopped", "exited"):
            return None
        try:
            return self.engine.memory_used(row)
        except ContainerEngineError as exc:
            logger.debug("no memory figure for %s: %s", backend_id, exc)
            return None

    def retire(self, row: BackendRow, reason: str) -> None:
        """Stop a backend on the controller's own account: its row stays, ``stopped``
        with ``reason``, until it is deleted."""
        self._shut(row, reason)
        self.metrics.stops.labels(row.type, reason).inc()

    def _shut(self, row: BackendRow, reason: str) -> None:
        """Keep its logs' tail, record it ``stopped`` with ``reason``, then remove its
        resources."""
        keep_tail(self._logs(), row)  # first: a stopped row's logs are the kept ones
        # Recorded first: the supervisor leaves it alone (its container's exit is no
        # crash to restart), and a controller killed before the removal ends finishes
        # it when it reconciles (reconcile.py), the row still saying why.
        self.store.update_backend(
            row.id, BackendUpdate(status="stopped", reason=reason)
        )
        self._idle.pop(row.id, None)
        self.engine.remove(row)

    # -- stop ----------------------------------------------------------------------------

    def stop(self, backend_id: str) -> None:
        row = self.get_row(backend_id)
        try:
            self._shut(row, STOPPING)
        except ContainerEngineError as exc:
            raise Unavailable(
                f"could not remove backend {row.id}: {exc}; the stop is recorded: "
                "retry it, or the controller finishes it when it next starts",
                {"backend": row.id},
            ) from exc
        self.store.delete_backend(row.id)

    def stop_all(self) -> int:
        """Remove every backend's sandbox, keeping its row as ``stopped`` (reason
        ``SHUTDOWN``: the controller stops with STOP_BACKENDS_ON_SHUTDOWN), then what
        the engine shares between them (Docker: the offline network, code volumes)."""
        count = 0
        for row in self.store.backends():
            if row.status == "stopped":
                continue
            try:
                self._shut(row, SHUTDOWN)
            except ContainerEngineError as exc:
                # Recorded: the next controller's reconciliation finishes it.
                logger.warning("could not remove backend %s: %s", row.id, exc)
                continue
            count += 1
        # Nothing of this controller's is left running: what they shared goes too.
        self.engine.remove_shared()
        return count

    # -- reconciliation ------------------------------------------------------------------

    def reconcile(self) -> dict[str, int]:
        """Adopt sandboxes with a row, remove orphans, mark missing rows."""
        return reconcile(self.store, self.engine, self.metrics, self.refresh)
