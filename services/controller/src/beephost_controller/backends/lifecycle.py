"""Backends on Docker: start (plan.py plans it, apply.py applies it), status, restarts,
stop, logs.

A start is recorded in the store (status ``starting``, container name fixed) BEFORE
the container is created, and the container carries the row's id as a label: a crash
at any point leaves either a row whose container is missing (marked exited, reason
``missing``) or a labelled container whose row exists (adopted); a labelled container
without a row (its row never committed, or deleted) is an orphan and is removed.

Networking (measured on engine 20.10): a backend without network runs with
``network_mode=none``: no interface but loopback, so its code reaches nothing, not
the host's own addresses nor a bridge's gateway (which a bridge without masquerade
still let through to host services). An http or rpc backend without network is
published by a relay (``beephost_core.relay``, in a container of its own from the
same image) on the controller's one shared bridge (``plan.offline_network``, with
masquerade and inter-container traffic off), which copies its port to the server's
Unix socket in the directory the two share. Every server listens on such a socket,
and the controller probes it there: a host port is out of its reach when it runs in
a container itself. The engine sets a network up for a container before starting its
process (80-130 ms for a veth pair on the bridge and the port's proxy), so a container
is created off its network and joins it right after its start (``DockerContainers``):
the set-up runs beside the process's boot. A start cut short between the two is
joined at reconciliation.

Ports: an http or rpc backend publishes ONE concrete host port, chosen at start and
kept in its row (``config.port``): the engine re-assigns an ephemeral port (host
port 0) on every start of a container, so a restart, by Docker's policy or by the
supervisor, would move the endpoint that ``start`` printed (host_ports.py picks it; a
port taken meanwhile is retried with another).
"""

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from beephost_controller.backends.apply import apply
from beephost_controller.backends.code_volumes import CodeVolumes
from beephost_controller.backends.host_ports import pick_port
from beephost_controller.backends.logs import BackendLogs, keep_tail, read_logs
from beephost_controller.backends.plan import (
    BackendRequest,
    Minted,
    backend_volumes,
    offline_network,
    plan,
    relay_name,
    selector,
    socket_endpoint,
)
from beephost_controller.backends.reconcile import reconcile
from beephost_controller.backends.status import (
    SHUTDOWN,
    STOPPING,
    exit_reason,
    status_of,
)
from beephost_controller.backends.supervise import supervise
from beephost_controller.images.layout import CONTAINER_PORTS
from beephost_controller.metrics import ControllerMetrics
from beephost_controller.ports import (
    BackendContainers,
    ContainerEngineError,
    ContainerState,
)
from beephost_controller.redact import Redactor
from beephost_controller.rows import BackendRow, BackendUpdate
from beephost_controller.schemas import ExitReason
from beephost_controller.settings import Settings
from beephost_controller.store import SqliteStore
from beephost_protocol.errors import (
    NotFound,
    QuotaExceeded,
    Unavailable,
)

logger = logging.getLogger(__name__)

#: How long a pool member's start, and a shutdown that stops the backends, wait for a
#: fill of code volumes under way (one takes about 2 s; a large image longer).
CODE_FILL_WAIT = 30.0


class BackendService:
    """Backends' lifecycle: start (a plan, applied), status, restarts, stop.

    Args:
        add_secret: Told every secret a start mints (the backend's token, and an
            admin backend's controller token): the controller's Redactor keeps them
            out of every log, a pool member's from its start on.
        spawn: Runs a fill of code volumes in the background (tests run it at once).
        redact: Takes the secrets out of the logs a stop keeps (the controller's
            Redactor; credential shapes only if omitted).
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
        spawn: Callable[[Callable[[], None]], None] | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.containers = containers
        self.metrics = metrics
        self.extra_labels = dict(extra_labels or {})
        self.clock = clock
        self.probe = probe
        self.add_secret = add_secret
        self.redact = redact or Redactor().redact
        #: What each backend's last health check said of its idleness (refresh).
        self._idle: dict[str, float | None] = {}
        #: Held from counting the backends to recording a new one (MAX_BACKENDS).
        self._admission = threading.Lock()
        self.code_volumes = CodeVolumes(
            containers,
            settings.code_volumes,
            self.name_prefix(),
            {**self.extra_labels, **self._selector()},
            spawn=spawn,
        )

    def name_prefix(self) -> str:
        """What the names of this controller's containers and volumes start with."""
        return f"beephost-{self.settings.name}"

    def _selector(self) -> dict[str, str]:
        return selector(self.settings)

    def _logs(self) -> BackendLogs:
        return BackendLogs(self.containers, self.store, self.redact, self.clock)

    def _socket_dir(self, backend_id: str) -> Path:
        return self.settings.socket_root / backend_id

    # -- start ---------------------------------------------------------------------------

    def start(self, request: BackendRequest) -> BackendRow:
        env = self.store.existing_environment(request.environment)
        # Before the plan, which may begin a copy of the image into code volumes: a
        # start refused for room begins nothing (the check that counts is below).
        self._check_room()
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
            pick_port=self.pick_port,
            extra_labels=self.extra_labels,
            code_volumes=self.code_volumes.mounts(
                env.image, wait=CODE_FILL_WAIT if request.pooled else 0.0
            )
            if env.image is not None and env.status == "ready"
            else None,
        )
        self.add_secret(planned.row.token)
        if planned.controller_token is not None:
            self.add_secret(planned.controller_token)
        with self._admission:
            self._check_room()
            # Recorded before the container exists (crash safety).
            self.store.insert_backend(planned.row)
        apply(self, planned, taken=set(held))
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

    def pick_port(self, host: str, taken: set[int]) -> int:
        """A free host port on ``host``, none of ``taken`` (host_ports.py)."""
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
        return bool(endpoint and self.probe is not None and self.answers(row))

    def answers(self, row: BackendRow) -> bool:
        """Whether the backend answers the readiness probe (True without a probe)."""
        if self.probe is None:
            return True
        return self.probe(self.probe_endpoint(row), row.token)

    def probe_endpoint(self, row: BackendRow) -> str:
        """Where the controller reaches a backend: its server's Unix socket, which it
        shares (a host port is out of reach from a controller in a container, and a
        backend without network has none of its own); its endpoint for a backend
        started before servers listened there too."""
        socket_url = socket_endpoint(row.type, self._socket_dir(row.id))
        if row.endpoint is None or Path(socket_url.partition("://")[2]).exists():
            return socket_url
        return row.endpoint

    def _endpoint(self, row: BackendRow, state: ContainerState) -> str | None:
        if row.type == "pipe":
            return socket_endpoint(row.type, self._socket_dir(row.id))
        # A relayed backend's port is its relay's: the row's, kept across restarts.
        port = state.ports.get(CONTAINER_PORTS[row.type] or 0) or row.config.port
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
        """Every backend, refreshed. One removed while the list is read (a stop, a
        pool shrinking) is left out: the listing must not fail for it."""
        rows = []
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

    def logs(self, backend_id: str, tail: int) -> str:
        """Its container's last ``tail`` lines, or those kept at its stop (logs.py)."""
        return read_logs(self._logs(), self.get_row(backend_id), tail)

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
        self.remove_resources(row.id, row.container_name)

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

    def remove_resources(self, backend_id: str, name: str) -> None:
        """Remove a backend's container, volumes and socket directory (its row
        stays), and the network of its own that backends had before they shared one."""
        self.containers.remove_container(relay_name(name))
        self.containers.remove_container(name)
        self.containers.remove_network(name)
        for volume in backend_volumes(name):
            self.containers.remove_volume(volume)
        shutil.rmtree(self._socket_dir(backend_id), ignore_errors=True)

    def stop_all(self) -> int:
        """Remove every backend's container, keeping its row as ``stopped`` (reason
        ``SHUTDOWN``: the controller stops with STOP_BACKENDS_ON_SHUTDOWN), then the
        shared network and code volumes."""
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
        # Nothing of this controller's is left running: its shared network goes too
        # (the engine refuses while a container is still on it).
        try:
            self.containers.remove_network(offline_network(self.settings))
        except ContainerEngineError as exc:
            logger.warning("could not remove the offline network: %s", exc)
        self.code_volumes.remove_all(wait=CODE_FILL_WAIT)
        return count

    # -- reconciliation ------------------------------------------------------------------

    def reconcile(self) -> dict[str, int]:
        """Adopt labelled containers with a row, remove orphans, mark missing rows."""
        return reconcile(self)
