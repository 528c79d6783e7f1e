"""The supervisor's sweep over every backend: lifetimes and idle timeouts enforced,
crashes the engine will not restart restarted (within one limit), statuses refreshed."""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from beephost_controller.backends.status import EXPIRED, IDLE, RESTARTABLE
from beephost_controller.metrics import ControllerMetrics
from beephost_controller.ports import BackendEngine, ContainerEngineError
from beephost_controller.rows import BackendRow, BackendUpdate
from beephost_controller.store import SqliteStore
from beephost_protocol.errors import NotFound

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Supervision:
    """What a sweep needs: the ports, its limit, and three steps of the lifecycle
    (a backend's status refreshed, a backend retired, its idleness last seen)."""

    store: SqliteStore
    engine: BackendEngine
    metrics: ControllerMetrics
    clock: Callable[[], float]
    restart_limit: int
    refresh: Callable[[str], BackendRow]
    retire: Callable[[BackendRow, str], None]
    idle_seconds: Callable[[str], float | None]


def supervise(service: Supervision) -> list[str]:
    """Refresh every backend; restart the crashed ones the engine will not restart.

    Docker's on-failure policy restarts a process that dies on its own, even while
    the controller is down; it treats ``docker kill`` and an exhausted retry count
    as final. The controller restarts those crashes too, within one shared limit
    (``restart_limit``, the engine's restarts included).

    Returns:
        The ids of the backends it restarted.
    """
    restarted = []
    # One reading of every sandbox for the whole sweep, where reads cost.
    with service.engine.sweep():
        for row in service.store.backends():
            try:
                if _expire_if_due(service, row):
                    continue
                row = service.refresh(row.id)
                if _stop_if_idle(service, row):
                    continue
                if (
                    row.status == "exited"
                    and row.reason in RESTARTABLE
                    and row.restarts < service.restart_limit
                    and row.container_id is not None
                ):
                    logger.warning(
                        "backend %s exited (%s, exit %s): restarting it",
                        row.id,
                        row.reason,
                        row.exit_code,
                    )
                    service.store.update_backend(
                        row.id,
                        BackendUpdate(
                            controller_restarts=row.controller_restarts + 1,
                            restarts=row.restarts + 1,
                            status="starting",
                            reason="restarting",
                        ),
                    )
                    service.engine.restart(row)
                    service.metrics.restarts.labels(row.type, row.reason or "").inc()
                    restarted.append(row.id)
            except NotFound:
                continue  # stopped meanwhile
            except ContainerEngineError as exc:
                logger.warning("supervising backend %s failed: %s", row.id, exc)
            except Exception:
                # One backend's surprise must not end the sweep: the backends after it
                # would never be stopped at their lifetime or idle timeout.
                logger.exception("supervising backend %s failed", row.id)
    service.metrics.count_backends(
        [(r.type, r.status) for r in service.store.backends()]
    )
    return restarted


def _expire_if_due(service: Supervision, row: BackendRow) -> bool:
    """Stop a backend whose lifetime has ended (reason ``expired``)."""
    expires_at = row.expires_at
    if row.status == "stopped" or expires_at is None or service.clock() < expires_at:
        return False
    logger.info(
        "backend %s reached the end of its %ss lifetime: stopping it",
        row.id,
        row.ttl,
    )
    service.retire(row, EXPIRED)
    return True


def _stop_if_idle(service: Supervision, row: BackendRow) -> bool:
    """Stop a ready backend whose server reports no request for its idle timeout
    (reason ``idle``); its last health check says how long."""
    idle = service.idle_seconds(row.id)
    timeout = row.idle_timeout
    if idle is not None and row.claimed_at is not None:
        # A pool member idled before its claim: that time is not its caller's.
        idle = min(idle, service.clock() - row.claimed_at)
    if row.status != "ready" or timeout is None or idle is None or idle < timeout:
        return False
    logger.info("backend %s idle for %.0fs: stopping it", row.id, idle)
    service.retire(row, IDLE)
    return True
