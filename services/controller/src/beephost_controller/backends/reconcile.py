"""Reconciliation: the rows and the engine's sandboxes made to agree.

Run at start-up: a sandbox with a row is adopted, one without is an orphan and is
removed (the engine's ``tidy``, with what else it left), a row whose sandbox is gone
is marked ``exited`` (reason ``missing``), and a stop a killed controller left
half-done is finished.
"""

import logging
from collections.abc import Callable

from beephost_controller.backends.status import RETIRED, STOPPING
from beephost_controller.metrics import ControllerMetrics
from beephost_controller.ports import BackendEngine
from beephost_controller.rows import BackendRow, BackendUpdate
from beephost_controller.store import SqliteStore

logger = logging.getLogger(__name__)


def reconcile(
    store: SqliteStore,
    engine: BackendEngine,
    metrics: ControllerMetrics,
    refresh: Callable[[str], BackendRow],
) -> dict[str, int]:
    """Adopt sandboxes with a row, remove orphans, mark missing rows.

    Args:
        refresh: A backend's status read again (the lifecycle's), once adopted.
    """
    counts = {"adopted": 0, "orphan_removed": 0, "missing": 0}
    rows = {row.id: row for row in store.backends()}
    for row in list(rows.values()):
        if (row.status, row.reason) == ("stopped", STOPPING):
            logger.info("finishing the interrupted stop of backend %s", row.id)
            engine.remove(row)
            store.delete_backend(row.id)
            del rows[row.id]
        elif row.status == "stopped" and row.reason in RETIRED:
            engine.remove(row)  # its row stays
            del rows[row.id]
    seen: set[str] = set()
    for sandbox in engine.sandboxes():
        adopted = rows.get(sandbox.backend_id)
        if adopted is None:
            continue  # an orphan: the tidy below removes it
        seen.add(adopted.id)
        if adopted.container_id != sandbox.state.id:
            update = BackendUpdate(container_id=sandbox.state.id)
            store.update_backend(adopted.id, update)
        refresh(adopted.id)
        counts["adopted"] += 1
    # Orphans, and what a crash left half-made (the engine's own business).
    counts["orphan_removed"] += engine.tidy(rows.values(), store.environment_images())
    for backend_id, row in rows.items():
        if backend_id not in seen and row.status not in ("exited", "stopped"):
            store.update_backend(
                backend_id, BackendUpdate(status="exited", reason="missing")
            )
            counts["missing"] += 1
    for action, count in counts.items():
        if count:
            metrics.reconciliations.labels(action).inc(count)
    return counts
