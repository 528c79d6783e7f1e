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
"""

import logging
import os
import secrets
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from beephost_controller.metrics import ControllerMetrics
from beephost_controller.runtime.base import ContainerRuntimeError
from beephost_controller.runtime.containers import (
    BackendContainers,
    ContainerSpec,
    ContainerState,
)
from beephost_controller.runtime.environment_images import (
    CONTAINER_PORTS,
    healthcheck_command,
    server_command,
)
from beephost_controller.settings import Settings
from beephost_controller.store import BackendRow, SqliteStore
from beephost_protocol.errors import InvalidRequest, NotFound, Unavailable

logger = logging.getLogger(__name__)

LABEL_MANAGED = "io.beephost.managed"
LABEL_CONTROLLER = "io.beephost.controller"
LABEL_ENVIRONMENT = "io.beephost.environment"
LABEL_BACKEND_ID = "io.beephost.backend"
LABEL_BACKEND_TYPE = "io.beephost.backend.type"


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


def status_of(state: ContainerState | None) -> tuple[str, str | None]:
    """(status, reason) of a backend from its container's state."""
    if state is None:
        return "exited", "missing"
    if state.status in ("running", "restarting"):
        if state.status == "restarting":
            return "starting", "restarting"
        if state.health == "healthy":
            return "ready", None
        if state.health == "unhealthy":
            return "unhealthy", None
        return "starting", None
    if state.status == "created":
        return "starting", None
    if state.oom_killed:
        return "exited", "oom_killed"
    if state.exit_code in (0, 143, 137) and state.status == "exited":
        return "exited", "stopped" if state.exit_code == 0 else "crashed"
    return "exited", "crashed"


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
    ) -> None:
        self.settings = settings
        self.store = store
        self.containers = containers
        self.metrics = metrics
        self.extra_labels = dict(extra_labels or {})
        self.clock = clock

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
        backend_id = f"b-{uuid.uuid4().hex[:12]}"
        name = f"beephost-{self.settings.name}-{backend_id}"
        token = request.token or secrets.token_urlsafe(24)
        network = env.network if request.network is None else request.network
        options = {
            "port": request.port,
            "bind_address": request.bind_address or self.settings.bind_address,
            "limits": {
                "memory_mb": request.memory_mb,
                "cpus": request.cpus,
                "pids": request.pids,
            },
            "read_only": request.read_only,
            "network": network,
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
        environment = {f"{prefix}TOKEN": token}
        ports: dict[int, tuple[str, int | None]] = {}
        socket_dir: Path | None = None
        group_add: list[str] = []
        network_name: str | None = None
        container_port = CONTAINER_PORTS[kind]
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
                ports[container_port] = (str(options["bind_address"]), request.port)
                if network:
                    network_name = "bridge"
                else:
                    network_name = name
                    self.containers.create_network(name, labels)
            container_id = self.containers.create_container(
                ContainerSpec(
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
                    network=network_name,
                    ports=ports,
                    socket_dir=socket_dir,
                    group_add=group_add,
                )
            )
            self.store.update_backend(backend_id, container_id=container_id)
            started = self.clock()
            self.containers.start_container(container_id)
            self.store.update_backend(backend_id, created_at=started)
        except (ContainerRuntimeError, OSError) as exc:
            self.store.update_backend(
                backend_id, status="exited", reason=f"failed: {exc}"
            )
            self._cleanup(backend_id, name)
            raise Unavailable(f"could not start backend: {exc}") from exc
        return self.refresh(backend_id)

    # -- status --------------------------------------------------------------------------

    def refresh(self, backend_id: str) -> BackendRow:
        row = self.get_row(backend_id)
        if row.status == "stopped":
            return row
        state = self.containers.container_state(row.container_id or row.container_name)
        status, reason = status_of(state)
        changes: dict[str, Any] = {}
        if state is not None:
            if row.container_id is None:
                changes["container_id"] = state.id
            if state.restart_count != row.restarts:
                changes["restarts"] = state.restart_count
            endpoint = self._endpoint(row, state)
            if endpoint != row.endpoint:
                changes["endpoint"] = endpoint
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

    def list(self) -> list[BackendRow]:
        return [self.refresh(row.id) for row in self.store.backends()]

    def wait_ready(self, backend_id: str, timeout: float) -> BackendRow:
        deadline = time.monotonic() + timeout
        row = self.refresh(backend_id)
        while row.status == "starting" and time.monotonic() < deadline:
            time.sleep(0.25)
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

    # -- stop ----------------------------------------------------------------------------

    def stop(self, backend_id: str) -> None:
        row = self.get_row(backend_id)
        self._cleanup(row.id, row.container_name)
        self.store.delete_backend(row.id)

    def _cleanup(self, backend_id: str, name: str) -> None:
        self.containers.remove_container(name)
        self.containers.remove_network(name)
        shutil.rmtree(self._socket_dir(backend_id), ignore_errors=True)

    # -- reconciliation ------------------------------------------------------------------

    def reconcile(self) -> dict[str, int]:
        """Adopt labelled containers with a row, remove orphans, mark missing rows."""
        counts = {"adopted": 0, "orphan_removed": 0, "missing": 0}
        rows = {row.id: row for row in self.store.backends()}
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
            if backend_id not in seen and row.status != "exited":
                self.store.update_backend(backend_id, status="exited", reason="missing")
                counts["missing"] += 1
        for action, count in counts.items():
            if count:
                self.metrics.reconciliations.labels(action).inc(count)
        return counts
