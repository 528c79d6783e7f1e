"""Backends on Docker: start, status, stop, logs and reconciliation.

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
kept in its row (``options["port"]``): the engine re-assigns an ephemeral port (host
port 0) on every start of a container, so a restart, by Docker's policy or by the
supervisor, would move the endpoint that ``start`` printed. A controller on the host
probes a free port; one in a container (where a free port says nothing about the host)
draws one from ``HOST_PORTS``; either way the engine has the last word, and a port
taken meanwhile is retried with another.
"""

import hashlib
import json
import logging
import os
import random
import secrets
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from beephost_controller.images.layout import (
    CONTAINER_PORTS,
    healthcheck_command,
    server_command,
)
from beephost_controller.metrics import ControllerMetrics
from beephost_controller.ports import (
    BackendContainers,
    ContainerConfigRefused,
    ContainerRuntimeError,
    ContainerSpec,
    ContainerState,
    PortInUse,
)
from beephost_controller.settings import Settings
from beephost_controller.store import BackendRow, SqliteStore
from beephost_protocol.errors import Conflict, InvalidRequest, NotFound, Unavailable

logger = logging.getLogger(__name__)

LABEL_MANAGED = "io.beephost.managed"
LABEL_CONTROLLER = "io.beephost.controller"
LABEL_ENVIRONMENT = "io.beephost.environment"
LABEL_BACKEND_ID = "io.beephost.backend"
LABEL_BACKEND_TYPE = "io.beephost.backend.type"

#: Where admin backends reach the controller: its Unix socket, mounted in their container.
ADMIN_CONTROLLER_URL = "unix:///run/beephost-controller/api.sock"


def token_digest(token: str) -> str:
    """A token's hex SHA-256: what the store keeps of an admin backend's controller
    token, and all a backend container is given of its own (TOKEN_SHA256)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class BackendRequest:
    environment: str
    type: str
    token: str | None = None
    port: int | None = None
    bind_address: str | None = None
    memory_mb: int = 512
    cpus: float = 1.0
    pids: int = 256
    read_only: bool = True
    network: bool | None = None
    tmpfs_mb: int = 64
    user: str = "10001:10001"
    cap_add: tuple[str, ...] = ()
    no_new_privileges: bool = True


#: Host ports a controller that cannot probe the host draws from: below Linux's
#: ephemeral range (32768-60999), where the engine's and the kernel's own picks fall.
HOST_PORTS = range(20000, 32768)

#: Ports tried for one start before it fails (each taken one is retried).
PORT_ATTEMPTS = 8

#: The reason of a backend being stopped (status ``stopped``) until its row is deleted.
STOPPING = "stopping"

#: Exit reasons after which the controller restarts a backend (within the limit).
RESTARTABLE = frozenset({"crashed", "oom_killed"})


def exit_reason(state: ContainerState) -> str:
    """Why an exited container exited: oom_killed, stopped (0 or SIGTERM) or crashed."""
    if state.oom_killed:
        return "oom_killed"
    if state.exit_code in (0, 143):
        return "stopped"
    return "crashed"


def status_of(state: ContainerState | None) -> tuple[str, str | None]:
    """(status, reason) of a backend from its container's state."""
    if state is None:
        return "exited", "missing"
    if state.status == "restarting":
        return "starting", "restarting"
    if state.status == "running":
        if state.health == "healthy":
            return "ready", None
        if state.health == "unhealthy":
            return "unhealthy", None
        return "starting", None
    if state.status == "created":
        return "starting", None
    return "exited", exit_reason(state)


def free_port(host: str) -> int | None:
    """A free TCP port on ``host``; None if ``host`` is not an address of this machine
    (a controller in a container publishing on its host's address): Docker picks then.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port: int = probe.getsockname()[1]
            return port
    except OSError:
        return None


class BackendService:
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
    ) -> None:
        self.settings = settings
        self.store = store
        self.containers = containers
        self.metrics = metrics
        self.extra_labels = dict(extra_labels or {})
        self.clock = clock
        self.probe = probe

    def _selector(self) -> dict[str, str]:
        return {LABEL_MANAGED: "true", LABEL_CONTROLLER: self.settings.name}

    def _socket_dir(self, backend_id: str) -> Path:
        return self.settings.socket_root / backend_id

    # -- start ---------------------------------------------------------------------------

    def start(self, request: BackendRequest) -> BackendRow:
        env = self.store.environment(request.environment)
        if env is None:
            raise NotFound(f"no environment {request.environment!r}")
        if env.status != "ready" or env.image is None:
            raise InvalidRequest(
                f"environment {env.name!r} is {env.status}, not ready",
                {"environment": env.name, "status": env.status},
            )
        if request.type not in CONTAINER_PORTS:
            raise InvalidRequest(f"unknown backend type {request.type!r}")
        kind = cast(Any, request.type)
        container_port = CONTAINER_PORTS[kind]
        bind_address = request.bind_address or self.settings.bind_address
        holders = {
            int(row.options["port"]): row.id
            for row in self.store.backends()
            if row.options.get("port")
        }
        taken = set(holders)
        if request.port in holders:
            # Kept for that backend's restarts, even while it is down.
            raise Conflict(
                f"host port {request.port} is held by backend {holders[request.port]}",
                {"port": request.port, "backend": holders[request.port]},
            )
        host_port = None
        if container_port is not None:
            host_port = request.port or self._pick_port(bind_address, taken)
        backend_id = f"b-{uuid.uuid4().hex[:12]}"
        name = f"beephost-{self.settings.name}-{backend_id}"
        token = request.token or secrets.token_urlsafe(24)
        network = env.network if request.network is None else request.network
        options = {
            # The host port, requested or chosen: every (re)start publishes this one.
            "port": host_port,
            "bind_address": bind_address,
            "limits": {
                "memory_mb": request.memory_mb,
                "cpus": request.cpus,
                "pids": request.pids,
            },
            "read_only": request.read_only,
            "network": network,
            "tmpfs_mb": request.tmpfs_mb,
            "user": request.user,
            "cap_add": list(request.cap_add),
            "no_new_privileges": request.no_new_privileges,
        }
        row = BackendRow(
            id=backend_id,
            environment=env.name,
            type=request.type,
            status="starting",
            container_name=name,
            token=token,
            options=options,
        )
        self.store.insert_backend(row)  # before the container exists (crash safety)
        labels = {
            **self.extra_labels,
            **self._selector(),
            LABEL_ENVIRONMENT: env.name,
            LABEL_BACKEND_ID: backend_id,
            LABEL_BACKEND_TYPE: request.type,
        }
        prefix = f"BEEPHOST_{request.type.upper()}_BACKEND_"
        # Only the token's digest goes into the container: its environment is inherited
        # by every docker exec'd process (the health check), readable by user code.
        environment = {f"{prefix}TOKEN_SHA256": token_digest(token)}
        controller_socket_dir: Path | None = None
        if env.admin:
            # The one environment whose code may drive the controller: a token of its
            # own (revoked with the backend) and the controller's Unix socket.
            controller_token = secrets.token_urlsafe(32)
            controller_socket_dir = self.settings.admin_socket.parent
            environment[f"{prefix}WORKER_ENV"] = json.dumps(
                {
                    "BEEPHOST_CONTROLLER_URL": ADMIN_CONTROLLER_URL,
                    "BEEPHOST_CONTROLLER_TOKEN": controller_token,
                }
            )
            row.controller_token_sha256 = token_digest(controller_token)
            self.store.update_backend(
                backend_id, controller_token_sha256=row.controller_token_sha256
            )
        ports: dict[int, tuple[str, int | None]] = {}
        socket_dir: Path | None = None
        group_add: list[str] = []
        network_name: str | None = None
        try:
            if container_port is None:
                socket_dir = self._socket_dir(backend_id)
                socket_dir.mkdir(parents=True, exist_ok=True)
                if os.geteuid() == 0:
                    os.chown(socket_dir, 10001, 10001)
                    socket_dir.chmod(0o770)
                else:
                    socket_dir.chmod(0o2770)
                    group_add.append(str(os.getegid()))
                if network:
                    network_name = "bridge"
            else:
                if network:
                    network_name = "bridge"
                else:
                    network_name = name
                    self.containers.create_network(name, labels)
            attempts = PORT_ATTEMPTS if host_port and not request.port else 1
            for attempt in range(1, attempts + 1):
                if container_port is not None and host_port is not None:
                    ports = {container_port: (bind_address, host_port)}
                spec = ContainerSpec(
                    name=name,
                    image=env.image,
                    command=server_command(kind),
                    labels=labels,
                    environment=environment,
                    healthcheck=healthcheck_command(kind),
                    memory_mb=request.memory_mb,
                    cpus=request.cpus,
                    pids=request.pids,
                    read_only=request.read_only,
                    tmpfs_mb=request.tmpfs_mb,
                    user=request.user,
                    cap_add=request.cap_add,
                    no_new_privileges=request.no_new_privileges,
                    restart_retries=self.settings.restart_limit,
                    network=network_name,
                    ports=ports,
                    socket_dir=socket_dir,
                    controller_socket_dir=controller_socket_dir,
                    group_add=group_add,
                )
                container_id = self.containers.create_container(spec)
                self.store.update_backend(backend_id, container_id=container_id)
                started = self.clock()
                try:
                    self.containers.start_container(container_id)
                except PortInUse:
                    if attempt == attempts:
                        raise
                    # Taken since it was chosen: another port, in a new container.
                    logger.info("host port %s is taken: choosing another", host_port)
                    self.containers.remove_container(container_id)
                    taken.add(host_port or 0)
                    host_port = self._pick_port(bind_address, taken)
                    options["port"] = host_port
                    self.store.update_backend(backend_id, options=options)
                    continue
                self.store.update_backend(backend_id, created_at=started)
                break
        except (ContainerRuntimeError, OSError) as exc:
            try:
                self._cleanup(backend_id, name)
            except ContainerRuntimeError:
                # Whatever was created is left to reconciliation, which needs the row.
                self.store.update_backend(
                    backend_id, status="exited", reason=f"failed: {exc}"
                )
            else:  # nothing runs: no row stays behind (the caller has the reason)
                self.store.delete_backend(backend_id)
            if isinstance(exc, ContainerConfigRefused):
                raise InvalidRequest(f"the engine refused the backend: {exc}") from exc
            if isinstance(exc, PortInUse):
                raise Conflict(
                    f"host port {host_port} on {bind_address} is already in use",
                    {"port": host_port, "bind_address": bind_address},
                ) from exc
            raise Unavailable(f"could not start backend: {exc}") from exc
        return self.refresh(backend_id)

    def _pick_port(self, host: str, taken: set[int]) -> int:
        """A host port for a new backend, none of ``taken`` (other backends' ports: an
        exited one is not listening, yet its restart needs its port back)."""
        for _ in range(100):
            probed = free_port(host) if self.settings.choose_host_ports else None
            port = probed or random.choice(HOST_PORTS)
            if port not in taken:
                return port
        raise Unavailable(f"no free host port on {host}")

    # -- status --------------------------------------------------------------------------

    def refresh(self, backend_id: str) -> BackendRow:
        row = self.get_row(backend_id)
        if row.status == "stopped":
            return row
        state = self.containers.container_state(row.container_id or row.container_name)
        status, reason = status_of(state)
        changes: dict[str, Any] = {}
        if state is not None and status == "starting" and reason is None:
            # Docker's first health check comes late: our own probe may know better,
            # and what it found holds until Docker has a verdict or the container
            # restarts.
            restarted = row.controller_restarts + state.restart_count != row.restarts
            if (row.status == "ready" and not restarted) or self._answers(row, state):
                status = "ready"
        if state is not None:
            if row.container_id is None:
                changes["container_id"] = state.id
            restarts = row.controller_restarts + state.restart_count
            if restarts != row.restarts:
                changes["restarts"] = restarts
            if state.restart_count > row.restarts - row.controller_restarts:
                # Docker restarted it between two looks (on-failure: a non-zero
                # exit); it resets the exit code, so the code is not known.
                changes["last_exit"] = "oom_killed" if state.oom_killed else "crashed"
                changes["exit_code"] = None
            endpoint = self._endpoint(row, state)
            if endpoint != row.endpoint:
                changes["endpoint"] = endpoint
            if status == "exited" and (state.exit_code, reason) != (
                row.exit_code,
                row.last_exit,
            ):
                changes["exit_code"], changes["last_exit"] = state.exit_code, reason
        if (status, reason) != (row.status, row.reason):
            changes["status"], changes["reason"] = status, reason
            if status == "ready" and row.ready_at is None:
                now = self.clock()
                changes["ready_at"] = now
                self.metrics.start_to_ready.labels(row.type).observe(
                    now - row.created_at
                )
        if changes:
            self.store.update_backend(backend_id, **changes)
            row = self.get_row(backend_id)
        return row

    def _answers(self, row: BackendRow, state: ContainerState) -> bool:
        endpoint = self._endpoint(row, state)
        return bool(endpoint and self.probe and self.probe(endpoint, row.token))

    def _endpoint(self, row: BackendRow, state: ContainerState) -> str | None:
        if row.type == "pipe":
            return f"unix://{self._socket_dir(row.id) / 'pipe.sock'}"
        port = state.ports.get(CONTAINER_PORTS[cast(Any, row.type)] or 0)
        if port is None:
            return row.endpoint
        scheme = "http" if row.type == "http" else "grpc"
        host = str(row.options.get("bind_address") or "127.0.0.1")
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
        """Refresh every backend; restart the crashed ones Docker will not restart.

        Docker's on-failure policy restarts a process that dies on its own, even while
        the controller is down; it treats ``docker kill`` and an exhausted retry count
        as final. The controller restarts those crashes too, within one shared limit
        (``restart_limit``, Docker's restarts included).

        Returns:
            The ids of the backends it restarted.
        """
        restarted = []
        for row in self.store.backends():
            try:
                row = self.refresh(row.id)
                if (
                    row.status == "exited"
                    and row.reason in RESTARTABLE
                    and row.restarts < self.settings.restart_limit
                    and row.container_id is not None
                ):
                    logger.warning(
                        "backend %s exited (%s, exit %s): restarting it",
                        row.id,
                        row.reason,
                        row.exit_code,
                    )
                    self.store.update_backend(
                        row.id,
                        controller_restarts=row.controller_restarts + 1,
                        restarts=row.restarts + 1,
                        status="starting",
                        reason="restarting",
                    )
                    self.containers.start_container(row.container_id)
                    self.metrics.restarts.labels(row.type, row.reason or "").inc()
                    restarted.append(row.id)
            except NotFound:
                continue  # stopped meanwhile
            except ContainerRuntimeError as exc:
                logger.warning("supervising backend %s failed: %s", row.id, exc)
        self.metrics.count_backends([(r.type, r.status) for r in self.store.backends()])
        return restarted

    # -- stop ----------------------------------------------------------------------------

    def stop(self, backend_id: str) -> None:
        row = self.get_row(backend_id)
        # Recorded before anything is removed: the supervisor leaves the backend alone
        # (its container's exit is no crash to restart), and a controller killed
        # mid-stop finishes the stop when it reconciles.
        self.store.update_backend(row.id, status="stopped", reason=STOPPING)
        self._cleanup(row.id, row.container_name)
        self.store.delete_backend(row.id)

    def _cleanup(self, backend_id: str, name: str) -> None:
        self.containers.remove_container(name)
        self.containers.remove_network(name)
        shutil.rmtree(self._socket_dir(backend_id), ignore_errors=True)

    def stop_all(self, reason: str) -> int:
        """Remove every backend's container, keeping its row as ``stopped``."""
        count = 0
        for row in self.store.backends():
            if row.status == "stopped":
                continue
            try:
                self._cleanup(row.id, row.container_name)
            except ContainerRuntimeError as exc:
                logger.warning("could not remove backend %s: %s", row.id, exc)
                continue
            self.store.update_backend(row.id, status="stopped", reason=reason)
            count += 1
        return count

    # -- reconciliation ------------------------------------------------------------------

    def reconcile(self) -> dict[str, int]:
        """Adopt labelled containers with a row, remove orphans, mark missing rows."""
        counts = {"adopted": 0, "orphan_removed": 0, "missing": 0}
        rows = {row.id: row for row in self.store.backends()}
        for row in list(rows.values()):
            if (row.status, row.reason) == ("stopped", STOPPING):
                logger.info("finishing the interrupted stop of backend %s", row.id)
                self._cleanup(row.id, row.container_name)
                self.store.delete_backend(row.id)
                del rows[row.id]
        seen: set[str] = set()
        for state in self.containers.list_containers(self._selector()):
            backend_id = state.labels.get(LABEL_BACKEND_ID, "")
            if backend_id in rows:
                seen.add(backend_id)
                if rows[backend_id].container_id != state.id:
                    self.store.update_backend(backend_id, container_id=state.id)
                self.refresh(backend_id)
                counts["adopted"] += 1
            else:
                logger.info("removing orphan container %s", state.name)
                if backend_id:
                    self._cleanup(backend_id, state.name)
                else:
                    self.containers.remove_container(state.id)
                counts["orphan_removed"] += 1
        for network in self.containers.list_networks(self._selector()):
            if not any(row.container_name == network for row in rows.values()):
                self.containers.remove_network(network)
        for backend_id, row in rows.items():
            if backend_id not in seen and row.status not in ("exited", "stopped"):
                self.store.update_backend(backend_id, status="exited", reason="missing")
                counts["missing"] += 1
        for action, count in counts.items():
            if count:
                self.metrics.reconciliations.labels(action).inc(count)
        return counts
