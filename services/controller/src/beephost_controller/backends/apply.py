"""A planned start made real: its network, volumes, socket directory and container.

The row is recorded before (lifecycle.py); what is made here is undone on failure, and
the row with it unless something stays for reconciliation. A host port taken since the
plan chose it is retried with another, in a new container.
"""

import io
import logging
import os
import tarfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from beephost_controller.backends.plan import SOCKET_DIR_MODE, BackendPlan
from beephost_controller.images.layout import CA_BUNDLE_PATH, PACKAGES
from beephost_controller.ports import (
    ContainerConfigRefused,
    ContainerEngineError,
    PortInUse,
)
from beephost_controller.rows import BackendUpdate
from beephost_protocol.errors import Conflict, InvalidRequest, Unavailable

if TYPE_CHECKING:
    from beephost_controller.backends.lifecycle import BackendService

logger = logging.getLogger(__name__)


def apply(service: "BackendService", planned: BackendPlan, taken: set[int]) -> None:
    """Make the recorded row's container, its relay if it has one (and their network
    and socket directory); on failure remove what was made, and the row if nothing
    stays."""
    row = planned.row
    try:
        if planned.network is not None:
            service.containers.ensure_network(planned.network, planned.network_labels)
        for volume in planned.spec.volumes:
            service.containers.create_volume(volume, planned.spec.labels)
        if planned.socket_dir is not None:
            _make_socket_dir(planned.socket_dir, planned.socket_dir_owner)
        # The container that publishes the port first: a relay before its backend,
        # so a crash between the two leaves a row without container (marked missing,
        # its relay removed with it), never a backend adopted without its way in.
        for attempt in range(1, planned.port_attempts + 1):
            if planned.relay is None:
                container_id = _create_backend(service, planned)
            else:
                container_id = service.containers.create_container(planned.relay)
            started = service.clock()
            try:
                service.containers.start_container(container_id)
            except PortInUse:
                if attempt == planned.port_attempts:
                    raise
                # Taken since it was chosen: another port, in a new container.
                port = planned.row.config.port
                logger.info("host port %s is taken: choosing another", port)
                service.containers.remove_container(container_id)
                taken.add(port or 0)
                planned = planned.with_port(
                    service.pick_port(row.config.bind_address, taken)
                )
                service.store.update_backend(
                    row.id, BackendUpdate(config=planned.row.config)
                )
                continue
            break
        if planned.relay is not None:
            started = service.clock()
            service.containers.start_container(_create_backend(service, planned))
        service.store.update_backend(row.id, BackendUpdate(created_at=started))
    except (ContainerEngineError, OSError) as exc:
        _undo(service, row.id, row.container_name, exc)
        if isinstance(exc, ContainerConfigRefused):
            raise InvalidRequest(f"the engine refused the backend: {exc}") from exc
        if isinstance(exc, PortInUse):
            port, address = planned.row.config.port, row.config.bind_address
            raise Conflict(
                f"host port {port} on {address} is already in use",
                {"port": port, "bind_address": address},
            ) from exc
        raise Unavailable(f"could not start backend: {exc}") from exc


def _create_backend(service: "BackendService", planned: BackendPlan) -> str:
    """Create the backend's container (with the CA bundle it needs) and record its id."""
    container_id = service.containers.create_container(planned.spec)
    if planned.ca_bundle is not None:
        service.containers.put_archive(
            container_id, PACKAGES, ca_bundle_archive(planned.ca_bundle)
        )
    service.store.update_backend(
        planned.row.id, BackendUpdate(container_id=container_id)
    )
    return container_id


def _undo(
    service: "BackendService", backend_id: str, name: str, exc: Exception
) -> None:
    try:
        service.remove_resources(backend_id, name)
    except ContainerEngineError:
        # Whatever was created is left to reconciliation, which needs the row.
        service.store.update_backend(
            backend_id, BackendUpdate(status="exited", reason=f"failed: {exc}")
        )
    else:  # nothing runs: no row stays behind (the caller has the reason)
        service.store.delete_backend(backend_id)


def _make_socket_dir(path: Path, owner: tuple[int, int] | None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        os.chown(path, *owner)
    path.chmod(SOCKET_DIR_MODE)


def ca_bundle_archive(path: Path) -> bytes:
    """The controller's CA bundle as a tar archive of ``ca-bundle.pem``, readable by
    the backend's user."""
    data = path.read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(PurePosixPath(CA_BUNDLE_PATH).name)
        info.size, info.mode = len(data), 0o644
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
