"""Backends on Docker: start (plan.py's plan, applied here), status, restarts, stop, logs.

A start is recorded in the store (status ``starting``, container name fixed) BEFORE
the container is created, and the container carries the row's id as a label: a crash
at any point leaves either a row whose container is missing (marked exited, reason
``missing``) or a labelled container whose row exists (adopted); a labelled container
without a row (its row never committed, or deleted) is an orphan and is removed.

Networking (measured on engine 20.10): a Docker network with ``internal=True`` cannot
publish ports. A backend without network therefore runs with ``network_mode=none``
(pipe) or, when it needs a published port (http, rpc), on a per-backend bridge
network with IP masquerading and inter-container traffic off: the port is published on
the loopback address, and outbound packets have no NAT, so no reply ever comes back.
Caveat: the host's own addresses on that bridge stay reachable from the container.

Ports: an http or rpc backend publishes ONE concrete host port, chosen at start and
kept in its row (``config.port``): the engine re-assigns an ephemeral port (host
port 0) on every start of a container, so a restart, by Docker's policy or by the
supervisor, would move the endpoint that ``start`` printed (host_ports.py picks it; a
port taken meanwhile is retried with another).
"""

import io
import logging
import os
import shutil
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path, PurePosixPath

from beephost_controller.backends.host_ports import pick_port
from beephost_controller.backends.plan import (
    SOCKET_DIR_MODE,
    BackendPlan,
    BackendRequest,
    Minted,
    backend_volumes,
    plan,
    selector,
)
from beephost_controller.backends.reconcile import reconcile
from beephost_controller.backends.status import (
    SHUTDOWN,
    STOPPING,
    exit_reason,
    status_of,
)
from beephost_controller.backends.supervise import supervise
from beephost_controller.images.layout import CA_BUNDLE_PATH, CONTAINER_PORTS, PACKAGES
from beephost_controller.metrics import ControllerMetrics
from beephost_controller.ports import (
    BackendContainers,
    ContainerConfigRefused,
    ContainerRuntimeError,
    ContainerState,
    PortInUse,
)
from beephost_controller.schemas import ExitReason
from beephost_controller.settings import Settings
from beephost_controller.store import BackendRow, BackendUpdate, SqliteStore
from beephost_protocol.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    Unavailable,
)

logger = logging.getLogger(__name__)


class BackendService:
    """Backends' lifecycle: start (a plan, applied), status, restarts, stop.

    Args:
        add_secret: Told every secret a start mints (the backend's token, and an
            admin backend's controller token): the controller's Redactor keeps them
            out of every log, a pool member's from its start on.
    """

    def __init__(
        self,
        settings: Settings,
        store: SqliteStore,
        containers: BackendContainers,
        metrics: ControllerMetrics,
        *,
        extra_labels: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        probe: Callable[[str, str | None], bool] | None = None,
        add_secret: Callable[[str], None] = lambda secret: None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.containers = containers
        self.metrics = metrics
        self.extra_labels = dict(extra_labels or {})
        self.clock = clock
        self.probe = probe
        self.add_secret = add_secret
        #: What each backend's last health check said of its idleness (refresh).
        self._idle: dict[str, float | None] = {}
        #: Held from counting the backends to recording a new one (MAX_BACKENDS).
        self._admission = threading.Lock()

    def _selector(self) -> dict[str, str]:
        return selector(self.settings)

    def _socket_dir(self, backend_id: str) -> Path:
        return self.settings.socket_root / backend_id

    # -- start ---------------------------------------------------------------------------

    def start(self, request: BackendRequest) -> BackendRow:
        env = self.store.environment(request.environment)
        if env is None:
            raise NotFound(f"no environment {request.environment!r}")
        held = {
            row.config.port: row.id
            for row in self.store.backends()
            if row.config.port is not None
        }
        planned = plan(
            request,
            env,
            self.settings,
            minted=Minted.draw(request, os.geteuid(), os.getegid()),
            held_ports=held,
            pick_port=self._pick_port,
            extra_labels=self.extra_labels,
        )
        self.add_secret(planned.row.token)
        if planned.controller_token is not None:
            self.add_secret(planned.controller_token)
        with self._admission:
            self._check_room()
            # Recorded before the container exists (crash safety).
            self.store.insert_backend(planned.row)
        self.apply(planned, taken=set(held))
        return self.refresh(planned.row.id)

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

    def apply(self, planned: BackendPlan, taken: set[int]) -> None:
        """Make the recorded row's container (and its network and socket directory);
        on failure remove what was made, and the row if nothing stays."""
        row = planned.row
        try:
            if planned.network is not None:
                self.containers.create_network(planned.network, planned.spec.labels)
            for volume in planned.spec.volumes:
                self.containers.create_volume(volume, planned.spec.labels)
            if planned.socket_dir is not None:
                self._make_socket_dir(planned.socket_dir, planned.socket_dir_owner)
            for attempt in range(1, planned.port_attempts + 1):
                container_id = self.containers.create_container(planned.spec)
                if planned.ca_bundle is not None:
                    self.containers.put_archive(
                        container_id, PACKAGES, ca_bundle_archive(planned.ca_bundle)
                    )
                self.store.update_backend(
                    row.id, BackendUpdate(container_id=container_id)
                )
                started = self.clock()
                try:
                    self.containers.start_container(container_id)
                except PortInUse:
                    if attempt == planned.port_attempts:
                        raise
                    # Taken since it was chosen: another port, in a new container.
                    port = planned.row.config.port
                    logger.info("host port %s is taken: choosing another", port)
                    self.containers.remove_container(container_id)
                    taken.add(port or 0)
                    planned = planned.with_port(
                        self._pick_port(row.config.bind_address, taken)
                    )
                    self.store.update_backend(
                        row.id, BackendUpdate(config=planned.row.config)
                    )
                    continue
                self.store.update_backend(row.id, BackendUpdate(created_at=started))
                break
        except (ContainerRuntimeError, OSError) as exc:
            self._undo(row.id, row.container_name, exc)
            if isinstance(exc, ContainerConfigRefused):
                raise InvalidRequest(f"the engine refused the backend: {exc}") from exc
            if isinstance(exc, PortInUse):
                port, address = planned.row.config.port, row.config.bind_address
                raise Conflict(
                    f"host port {port} on {address} is already in use",
                    {"port": port, "bind_address": address},
                ) from exc
            raise Unavailable(f"could not start backend: {exc}") from exc

    def _undo(self, backend_id: str, name: str, exc: Exception) -> None:
        try:
            self.remove_resources(backend_id, name)
        except ContainerRuntimeError:
            # Whatever was created is left to reconciliation, which needs the row.
            self.store.update_backend(
                backend_id, BackendUpdate(status="exited", reason=f"failed: {exc}")
            )
        else:  # nothing runs: no row stays behind (the caller has the reason)
            self.store.delete_backend(backend_id)

    @staticmethod
    def _make_socket_dir(path: Path, owner: tuple[int, int] | None) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            os.chown(path, *owner)
        path.chmod(SOCKET_DIR_MODE)

    def _pick_port(self, host: str, taken: set[int]) -> int:
        return pick_port(host, taken, probe=self.settings.choose_host_ports)

    # -- status --------------------------------------------------------------------------

    def refresh(self, backend_id: str) -> BackendRow:
        row = self.get_row(backend_id)
        if row.status == "stopped":
            return row
        state = self.containers.container_state(row.container_id or row.container_name)
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
            endpoint = self._endpoint(row, state)
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
        endpoint = self._endpoint(row, state)
        return bool(endpoint and self.probe and self.probe(endpoint, row.token))

    def _endpoint(self, row: BackendRow, state: ContainerState) -> str | None:
        if row.type == "pipe":
            return f"unix://{self._socket_dir(row.id) / 'pipe.sock'}"
        port = state.ports.get(CONTAINER_PORTS[row.type] or 0)
        if port is None:
            return row.endpoint
        scheme = "http" if row.type == "http" else "grpc"
        host = row.config.bind_address
        return f"{scheme}://{host}:{port}"

    def get_row(self, backend_id: str) -> BackendRow:
        row = self.store.backend(backend_id)
        if row is None:
            raise NotFound(f"no backend {backend_id!r}", {"backend": backend_id})
        return row

    def all(self) -> list[BackendRow]:
        return [self.refresh(row.id) for row in self.store.backends()]

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

    def logs(self, backend_id: str, tail: int) -> str:
        row = self.get_row(backend_id)
        try:
            return self.containers.container_logs(
                row.container_id or row.container_name, tail
            )
        except ContainerRuntimeError as exc:
            raise Unavailable(f"no logs for {backend_id}: {exc}") from exc

    # -- restart policy ------------------------------------------------------------------

    def supervise(self) -> list[str]:
        """One sweep of the supervisor (supervise.py); the ids of the backends it
        restarted."""
        return supervise(self)

    def idle_seconds(self, backend_id: str) -> float | None:
        """What the backend's last health check said of its idleness (None: not
        known)."""
        return self._idle.get(backend_id)

    def retire(self, row: BackendRow, reason: str) -> None:
        """Stop a backend on the controller's own account: its row stays, ``stopped``
        with ``reason``, until it is deleted."""
        self._shut(row, reason)
        self.metrics.stops.labels(row.type, reason).inc()

    def _shut(self, row: BackendRow, reason: str) -> None:
        """Record a backend ``stopped`` with ``reason``, then remove its resources."""
        # Recorded first: the supervisor leaves it alone (its container's exit is no
        # crash to restart), and a controller killed before the removal ends finishes
        # it when it reconciles (reconcile.py), the row still saying why.
        self.store.update_backend(
            row.id, BackendUpdate(status="stopped", reason=reason)
        )
        self._idle.pop(row.id, None)
        self.remove_resources(row.id, row.container_name)

    # -- stop ----------------------------------------------------------------------------

    def stop(self, backend_id: str) -> None:
        row = self.get_row(backend_id)
        try:
            self._shut(row, STOPPING)
        except ContainerRuntimeError as exc:
            raise Unavailable(
                f"could not remove backend {row.id}: {exc}; the stop is recorded: "
                "retry it, or the controller finishes it when it next starts",
                {"backend": row.id},
            ) from exc
        self.store.delete_backend(row.id)

    def remove_resources(self, backend_id: str, name: str) -> None:
        """Remove a backend's container, network, volumes and socket directory (its
        row stays)."""
        self.containers.remove_container(name)
        self.containers.remove_network(name)
        for volume in backend_volumes(name):
            self.containers.remove_volume(volume)
        shutil.rmtree(self._socket_dir(backend_id), ignore_errors=True)

    def stop_all(self) -> int:
        """Remove every backend's container, keeping its row as ``stopped`` (reason
        ``SHUTDOWN``: the controller stops with STOP_BACKENDS_ON_SHUTDOWN)."""
        count = 0
        for row in self.store.backends():
            if row.status == "stopped":
                continue
            try:
                self._shut(row, SHUTDOWN)
            except ContainerRuntimeError as exc:
                # Recorded: the next controller's reconciliation finishes it.
                logger.warning("could not remove backend %s: %s", row.id, exc)
                continue
            count += 1
        return count

    # -- reconciliation ------------------------------------------------------------------

    def reconcile(self) -> dict[str, int]:
        """Adopt labelled containers with a row, remove orphans, mark missing rows."""
        return reconcile(self)


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
