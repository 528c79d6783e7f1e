"""A planned start on Docker made real: its network, volumes, socket directory,
relay and container.

The row is recorded before (by the use case); what is made here is undone on
failure, and ``LaunchFailed`` says whether it all went. A host port taken since the
plan chose it is retried with another, in a new container.
"""

import io
import logging
import os
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from beephost_controller.engine.docker_plan import SOCKET_DIR_MODE, DockerPlan
from beephost_controller.images.layout import CA_BUNDLE_PATH, PACKAGES
from beephost_controller.ports import (
    BackendContainers,
    ContainerConfigRefused,
    ContainerEngineError,
    LaunchFailed,
    PortInUse,
    Record,
)
from beephost_controller.rows import BackendUpdate
from beephost_protocol.errors import (
    BeepHostError,
    Conflict,
    InvalidRequest,
    Unavailable,
)

logger = logging.getLogger(__name__)


def launch(
    containers: BackendContainers,
    planned: DockerPlan,
    record: Record,
    *,
    pick_port: Callable[[str, set[int]], int],
    clock: Callable[[], float],
    undo: Callable[[], None],
) -> None:
    """Make the recorded row's container, its relay if it has one (and their network
    and socket directory), recording the container's id, a new port and the start;
    on failure ``undo`` what was made.

    Raises:
        LaunchFailed: Why, and whether ``undo`` removed it all.
    """
    try:
        _make(containers, planned, record, pick_port=pick_port, clock=clock)
    except _Failed as failed:
        exc = failed.cause
        try:
            undo()
        except ContainerEngineError:
            # Whatever was created is left to reconciliation, which needs the row.
            raise LaunchFailed(refusal(failed.planned, exc), undone=False) from exc
        raise LaunchFailed(refusal(failed.planned, exc), undone=True) from exc


class _Failed(Exception):
    """A launch failed for ``cause`` on ``planned`` (the plan last tried: its port)."""

    def __init__(self, planned: DockerPlan, cause: Exception) -> None:
        super().__init__(str(cause))
        self.planned, self.cause = planned, cause


def _make(
    containers: BackendContainers,
    planned: DockerPlan,
    record: Record,
    *,
    pick_port: Callable[[str, set[int]], int],
    clock: Callable[[], float],
) -> None:
    try:
        if planned.network is not None:
            containers.ensure_network(planned.network, planned.network_labels)
        for volume in planned.spec.volumes:
            containers.create_volume(volume, planned.spec.labels)
        if planned.socket_dir is not None:
            make_socket_dir(planned.socket_dir, planned.socket_dir_owner)
        # The container that publishes the port is created first: a relay before its
        # backend, so a crash between the two leaves a row without container (marked
        # missing, its relay removed with it), never a backend adopted without its
        # way in. The relay then starts while the backend is made and started: its
        # start is off a cold start's critical path.
        if planned.relay_made is not None:
            # Its relay was made ahead (relay_pool.py) and listens on the row's port.
            backend = _create_backend(containers, planned, record)
            started = clock()
            containers.start_container(backend)
        elif planned.relay is None:
            planned, started = _start_publisher(
                containers,
                planned,
                record,
                pick_port,
                clock,
                lambda plan: _create_backend(containers, plan, record),
            )
        else:
            first = containers.create_container(planned.relay)
            with ThreadPoolExecutor(1, thread_name_prefix="beephost-relay") as pool:
                relayed = pool.submit(
                    _start_publisher,
                    containers,
                    planned,
                    record,
                    pick_port,
                    clock,
                    lambda plan: _create_relay(containers, plan),
                    first,
                )
                try:
                    backend = _create_backend(containers, planned, record)
                    started = clock()
                    containers.start_container(backend)
                finally:
                    # Waited for either way: what undo removes must all be made.
                    planned, _ = relayed.result()
        record(BackendUpdate(created_at=started))
    except (ContainerEngineError, OSError) as exc:
        raise _Failed(planned, exc) from exc


def _start_publisher(
    containers: BackendContainers,
    planned: DockerPlan,
    record: Record,
    pick_port: Callable[[str, set[int]], int],
    clock: Callable[[], float],
    create: Callable[[DockerPlan], str],
    created: str | None = None,
) -> tuple[DockerPlan, float]:
    """Start the container that publishes the backend's port (``created``, else one
    ``create`` makes); a host port taken since the plan chose it is retried with
    another, in a new container, recorded. The plan with the port used, and when it
    started.

    Raises:
        _Failed: With the plan last tried (its port is the one a refusal names).
    """
    current = planned

    def create_on(port: int | None) -> str:
        nonlocal current
        if port is not None and port != current.row.config.port:
            current = current.with_port(port)
            record(BackendUpdate(config=current.row.config))
        return create(current)

    address = planned.row.config.bind_address
    try:
        _, _, started = start_publishing(
            containers,
            create_on,
            planned.row.config.port,
            lambda taken: pick_port(address, taken),
            attempts=planned.port_attempts,
            taken=set(planned.held_ports),
            clock=clock,
            created=created,
        )
    except (ContainerEngineError, OSError) as exc:
        raise _Failed(current, exc) from exc
    return current, started


def start_publishing(
    containers: BackendContainers,
    create: Callable[[int | None], str],
    port: int | None,
    pick: Callable[[set[int]], int],
    *,
    attempts: int,
    taken: set[int],
    clock: Callable[[], float],
    created: str | None = None,
) -> tuple[int | None, str, float]:
    """Start a container that publishes host ``port`` (``created``, else the one
    ``create(port)`` makes). A port taken since it was chosen (the engine refuses the
    start) is given up, with its container, for another that ``pick`` chooses (none
    of ``taken`` nor of those tried), in a new container: ``attempts`` starts in all.
    The port used, the container, and when its start began.

    Raises:
        PortInUse: The last attempt's port was taken too (its container removed).
        ContainerEngineError: The engine failed otherwise.
    """
    container_id = created or create(port)
    for attempt in range(1, attempts + 1):
        started = clock()
        try:
            containers.start_container(container_id)
            return port, container_id, started
        except PortInUse:
            containers.remove_container(container_id)
            if attempt == attempts:
                raise
        logger.info("host port %s is taken: choosing another", port)
        taken.add(port or 0)
        port = pick(taken)
        container_id = create(port)
    raise AssertionError("unreachable: the last attempt raises")


def refusal(planned: DockerPlan, exc: Exception) -> BeepHostError:
    """What a failed launch answers, in the API's terms."""
    if isinstance(exc, ContainerConfigRefused):
        return InvalidRequest(f"the engine refused the backend: {exc}")
    if isinstance(exc, PortInUse):
        port, address = planned.row.config.port, planned.row.config.bind_address
        return Conflict(
            f"host port {port} on {address} is already in use",
            {"port": port, "bind_address": address},
        )
    return Unavailable(f"could not start backend: {exc}")


def _create_backend(
    containers: BackendContainers, planned: DockerPlan, record: Record
) -> str:
    """Create the backend's container (with the CA bundle it needs) and record its id."""
    container_id = containers.create_container(planned.spec)
    if planned.ca_bundle is not None:
        containers.put_archive(
            container_id, PACKAGES, ca_bundle_archive(planned.ca_bundle)
        )
    record(BackendUpdate(container_id=container_id))
    return container_id


def _create_relay(containers: BackendContainers, planned: DockerPlan) -> str:
    assert planned.relay is not None  # a plan with a relay keeps one at every port
    return containers.create_container(planned.relay)


def make_socket_dir(path: Path, owner: tuple[int, int] | None) -> None:
    """A backend's socket directory, given to ``owner`` (None: the controller's)."""
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
