"""Reconciliation: the rows and the engine's labelled containers made to agree.

Run at start-up and periodically: a labelled container with a row is adopted, one
without is an orphan and is removed, a row whose container is gone is marked
``exited`` (reason ``missing``), and a stop a killed controller left half-done is
finished.
"""

import logging
from typing import TYPE_CHECKING

from beephost_controller.backends.plan import (
    LABEL_BACKEND_ID,
    LABEL_RELAY_FOR,
    backend_volumes,
    is_backend_id,
    offline_network,
    selector,
)
from beephost_controller.backends.status import RETIRED, STOPPING
from beephost_controller.images.labels import (
    KIND_ENVIRONMENT_BUILD,
    LABEL_IMAGE_OWNER,
    LABEL_KIND,
)
from beephost_controller.ports import ContainerEngineError
from beephost_controller.rows import BackendUpdate

if TYPE_CHECKING:
    from beephost_controller.backends.lifecycle import BackendService

logger = logging.getLogger(__name__)


def reconcile(service: "BackendService") -> dict[str, int]:
    """Adopt labelled containers with a row, remove orphans, mark missing rows."""
    counts = {"adopted": 0, "orphan_removed": 0, "missing": 0}
    rows = {row.id: row for row in service.store.backends()}
    for row in list(rows.values()):
        if (row.status, row.reason) == ("stopped", STOPPING):
            logger.info("finishing the interrupted stop of backend %s", row.id)
            service.remove_resources(row.id, row.container_name)
            service.store.delete_backend(row.id)
            del rows[row.id]
        elif row.status == "stopped" and row.reason in RETIRED:
            service.remove_resources(row.id, row.container_name)  # its row stays
            del rows[row.id]
    seen: set[str] = set()
    for state in service.containers.list_containers(selector(service.settings)):
        if LABEL_RELAY_FOR in state.labels:
            # A relay stays while its backend's row does (removed with it).
            relayed = state.labels[LABEL_RELAY_FOR]
            if relayed not in rows:
                logger.info("removing orphan relay %s", state.name)
                service.containers.remove_container(state.id)
                counts["orphan_removed"] += 1
            elif state.unjoined_network is not None and state.status == "running":
                _join(service, relayed, state.id)
            continue
        backend_id = state.labels.get(LABEL_BACKEND_ID, "")
        if not is_backend_id(backend_id):
            # A build's (maybe running now: see remove_leftover_builds), a probe's or
            # a fill's: they carry their image's labels, ours among them.
            continue
        if backend_id in rows:
            seen.add(backend_id)
            if rows[backend_id].container_id != state.id:
                service.store.update_backend(
                    backend_id, BackendUpdate(container_id=state.id)
                )
            if state.unjoined_network is not None and state.status == "running":
                _join(service, backend_id, state.id)
            service.refresh(backend_id)
            counts["adopted"] += 1
        else:
            logger.info("removing orphan container %s", state.name)
            service.remove_resources(backend_id, state.name)
            counts["orphan_removed"] += 1
    shared = offline_network(service.settings)
    for network in service.containers.list_networks(selector(service.settings)):
        # Kept: the shared one; a backend's own: made before backends shared one.
        if network != shared and not any(
            row.container_name == network for row in rows.values()
        ):
            service.containers.remove_network(network)
    kept = {v for row in rows.values() for v in backend_volumes(row.container_name)}
    codes = service.code_volumes  # shared by backends: removed with their image below
    for volume in service.containers.list_volumes(selector(service.settings)):
        if volume not in kept and not codes.owns(volume):
            service.containers.remove_volume(volume)  # a start a crash cut short
    for key in codes.remove_unused(service.store.environment_images()):
        logger.info("removed the code volumes of image %s: the image is gone", key)
    for backend_id, row in rows.items():
        if backend_id not in seen and row.status not in ("exited", "stopped"):
            service.store.update_backend(
                backend_id, BackendUpdate(status="exited", reason="missing")
            )
            counts["missing"] += 1
    for action, count in counts.items():
        if count:
            service.metrics.reconciliations.labels(action).inc(count)
    return counts


def remove_leftover_builds(service: "BackendService") -> int:
    """Remove this controller's environment-build containers; how many there were.

    Only at start-up, before the jobs resume: then none of them is a live build, only
    what a controller killed during a build left (the install's container, running
    or exited). Another controller's are never touched.
    """
    labels = {
        LABEL_KIND: KIND_ENVIRONMENT_BUILD,
        LABEL_IMAGE_OWNER: service.settings.name,
    }
    leftovers = service.containers.list_containers(labels)
    for state in leftovers:
        logger.info("removing the leftover build container %s", state.name)
        service.containers.remove_container(state.id)
    return len(leftovers)


def _join(service: "BackendService", backend_id: str, container_id: str) -> None:
    """Join a running backend (or its relay) to its network: a crash cut its start
    short between the container's start and the join, which leaves it unreachable."""
    logger.info("backend %s runs without its network: joining it", backend_id)
    try:
        service.containers.join_network(container_id)
    except ContainerEngineError as exc:  # its port taken meanwhile, say
        logger.warning("backend %s could not join its network: %s", backend_id, exc)
