"""BackendService: restart policy, own readiness probe, hardening options, admin
backends — pure logic against an in-memory container engine."""

import json
import socket
from pathlib import Path

import pytest

from beephost_controller.backends import BackendRequest, BackendService, token_digest
from beephost_controller.engine.docker_plan import ADMIN_CONTROLLER_URL, relay_name
from beephost_controller.engine.host_ports import HOST_PORTS, free_port
from beephost_controller.ports import ContainerConfigRefused, ContainerEngineError
from beephost_controller.redact import Redactor
from beephost_controller.rows import JobRow
from beephost_controller.schemas import BackendLimits, BackendOptions
from beephost_controller.specs import ContainerSpec
from beephost_controller.testing import MemoryContainers
from beephost_protocol.errors import InvalidRequest, Unavailable
from tests.unit.controller.support import (
    backend_service,
    docker_engine,
    memory_containers,
    ready_environment,
)


def _service(
    tmp_path: Path,
    *,
    healthy: bool = True,
    probe: "list[bool] | None" = None,
    restart_limit: int = 2,
) -> BackendService:
    answers = probe

    def fake_probe(endpoint: str, token: str | None) -> bool:
        return bool(answers and answers.pop(0))

    return backend_service(
        tmp_path,
        containers=MemoryContainers(healthy=healthy),
        environments=[ready_environment("e"), ready_environment("admin", admin=True)],
        probe=fake_probe if probe is not None else None,
        settings={"restart_limit": restart_limit},
    )


def test_a_crashed_backend_is_restarted_up_to_the_limit(tmp_path: Path) -> None:
    service = _service(tmp_path, restart_limit=2)
    row = service.start(BackendRequest(environment="e", type="http"))
    mem = memory_containers(service)
    for attempt in (1, 2):
        mem.exit(row.container_name, 137)
        assert service.supervise() == [row.id]
        assert service.get_row(row.id).status == "starting"
        now = service.refresh(row.id)
        assert (now.status, now.restarts) == ("ready", attempt)
        assert (now.last_exit, now.exit_code) == ("crashed", 137)
    mem.exit(row.container_name, 137)
    assert service.supervise() == [], "the limit is spent"
    final = service.get_row(row.id)
    assert (final.status, final.reason) == ("exited", "crashed")
    assert mem.starts.count(row.container_name) == 3
    text = service.metrics.registry.get_sample_value(
        "beephost_controller_backend_restarts_total",
        {"type": "http", "reason": "crashed"},
    )
    assert text == 2.0


@pytest.mark.parametrize(
    ("exit_code", "oom", "restarted", "reason"),
    [
        (0, False, False, "stopped"),
        (143, False, False, "stopped"),
        (1, False, True, "crashed"),
        (137, True, True, "oom_killed"),
    ],
)
def test_only_crashes_are_restarted(
    tmp_path: Path, exit_code: int, oom: bool, restarted: bool, reason: str
) -> None:
    service = _service(tmp_path)
    row = service.start(BackendRequest(environment="e", type="pipe"))
    memory_containers(service).exit(row.container_name, exit_code, oom=oom)
    assert bool(service.supervise()) is restarted
    assert service.get_row(row.id).last_exit == reason


def test_docker_restarts_count_and_are_reported_as_crashes(tmp_path: Path) -> None:
    service = _service(tmp_path)
    row = service.start(BackendRequest(environment="e", type="rpc"))
    mem = memory_containers(service)
    state = mem.containers[row.container_name]
    mem.containers[row.container_name] = state.__class__(
        **{**state.__dict__, "restart_count": 3}
    )
    now = service.refresh(row.id)
    assert now.restarts == 3
    assert (now.status, now.last_exit, now.exit_code) == ("ready", "crashed", None)


def test_own_probe_makes_a_backend_ready_before_dockers_check(
    tmp_path: Path,
) -> None:
    service = _service(tmp_path, healthy=False, probe=[False, True])
    row = service.start(BackendRequest(environment="e", type="http"))
    assert row.status == "starting"  # the first probe failed
    ready = service.refresh(row.id)
    assert ready.status == "ready"
    assert ready.ready_at is not None
    samples = service.metrics.registry.get_sample_value(
        "beephost_controller_backend_start_to_ready_seconds_count", {"type": "http"}
    )
    assert samples == 1.0


def test_without_a_probe_dockers_health_decides(tmp_path: Path) -> None:
    service = _service(tmp_path, healthy=False)
    row = service.start(BackendRequest(environment="e", type="http"))
    assert service.refresh(row.id).status == "starting"


def test_wait_change_returns_at_the_change_or_the_timeout(tmp_path: Path) -> None:
    service = _service(tmp_path, healthy=False, probe=[False, False, False, True])
    row = service.start(BackendRequest(environment="e", type="http"))
    assert service.wait_change(row.id, 5, interval=0.001).status == "ready"
    same = service.wait_change(row.id, 0.05, interval=0.01)
    assert same.status == "ready"
    at_once = service.wait_change(row.id, 30, seen="starting")
    assert at_once.status == "ready", "a change the caller missed returns at once"


def test_hardening_options_reach_the_container_spec(tmp_path: Path) -> None:
    service = _service(tmp_path)
    default = service.start(BackendRequest(environment="e", type="pipe"))
    relaxed = service.start(
        BackendRequest(
            environment="e",
            type="http",
            options=BackendOptions(
                read_only=False,
                tmpfs_mb=256,
                user="0:0",
                cap_add=["NET_RAW"],
                no_new_privileges=False,
                network=True,
            ),
            limits=BackendLimits(memory_mb=1024, pids=512, cpus=0.5),
        )
    )
    specs = memory_containers(service).specs
    hard = specs[default.container_name]
    assert (hard.user, hard.read_only, hard.no_new_privileges) == (
        "10001:10001",
        True,
        True,
    )
    assert (hard.cap_add, hard.network, hard.controller_socket_dir) == ((), None, None)
    soft = specs[relaxed.container_name]
    assert (soft.user, soft.read_only, soft.no_new_privileges) == ("0:0", False, False)
    assert (soft.cap_add, soft.tmpfs_mb, soft.network) == (("NET_RAW",), 256, "bridge")
    assert (soft.memory_mb, soft.pids, soft.cpus) == (1024, 512, 0.5)
    assert service.get_row(relaxed.id).options.user == "0:0"


def test_http_and_rpc_publish_a_fixed_port(tmp_path: Path) -> None:
    service = _service(tmp_path)
    row = service.start(BackendRequest(environment="e", type="rpc"))
    specs = memory_containers(service).specs
    (host, port) = specs[relay_name(row.container_name)].ports[50051]
    assert host == "127.0.0.1"
    assert isinstance(port, int), "fixed at create time, so a restart keeps it"
    chosen = service.start(BackendRequest(environment="e", type="http", port=45678))
    assert specs[relay_name(chosen.container_name)].ports[5678][1] == 45678


def test_free_port_is_bindable_and_none_for_a_foreign_address() -> None:
    port = free_port("127.0.0.1")
    assert port is not None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert free_port("192.0.2.1") is None  # TEST-NET-1: not an address of ours


def test_only_admin_backends_get_controller_access(tmp_path: Path) -> None:
    service = _service(tmp_path)
    redactor = Redactor()
    service.add_secret = redactor.add
    plain = service.start(BackendRequest(environment="e", type="pipe"))
    admin = service.start(BackendRequest(environment="admin", type="rpc"))
    specs = memory_containers(service).specs
    assert plain.controller_token_sha256 is None
    assert not any("WORKER_ENV" in k for k in specs[plain.container_name].environment)
    spec = specs[admin.container_name]
    assert spec.controller_socket_dir == service.settings.admin_socket.parent
    worker_env = json.loads(spec.environment["BEEPHOST_RPC_BACKEND_WORKER_ENV"])
    assert worker_env["BEEPHOST_CONTROLLER_URL"] == ADMIN_CONTROLLER_URL
    token = worker_env["BEEPHOST_CONTROLLER_TOKEN"]
    assert token != admin.token, "the controller token is not the backend's own"
    assert token not in redactor.redact(f"leaked {token}"), "never in a log line"
    assert service.get_row(admin.id).controller_token_sha256 == token_digest(token)
    found = service.store.backend_by_controller_token(token_digest(token))
    assert found is not None
    assert found.id == admin.id
    service.stop(admin.id)
    assert service.store.backend_by_controller_token(token_digest(token)) is None


def test_an_environment_that_is_not_ready_cannot_start(tmp_path: Path) -> None:
    service = _service(tmp_path)
    service.store.insert_job(JobRow("job-1", "build", "e", "running"))
    service.store.set_environment_job("e", "job-1")
    with pytest.raises(InvalidRequest) as refused:
        service.start(BackendRequest(environment="e", type="pipe"))
    assert refused.value.data == {"environment": "e", "status": "building"}
    assert service.store.backends() == []


def test_stop_all_removes_containers_and_keeps_rows_stopped(tmp_path: Path) -> None:
    service = _service(tmp_path)
    rows = [
        service.start(BackendRequest(environment="e", type=kind))
        for kind in ("pipe", "http", "rpc")
    ]
    assert service.stop_all() == 3
    assert memory_containers(service).containers == {}
    # Nothing of the controller's runs: the shared network went with the last one.
    assert memory_containers(service).networks == {}
    for row in rows:
        now = service.get_row(row.id)
        assert (now.status, now.reason) == ("stopped", "controller shut down")
    assert service.reconcile()["missing"] == 0, "stopped rows are not missing"
    assert service.supervise() == []


def test_a_shutdown_stop_the_engine_refused_is_finished_by_reconciliation(
    tmp_path: Path,
) -> None:
    service = _service(tmp_path)
    row = service.start(BackendRequest(environment="e", type="http"))
    real_remove = memory_containers(service).remove_container

    def refuse(ref: str) -> None:
        raise ContainerEngineError("the engine is busy")

    memory_containers(service).remove_container = refuse  # type: ignore[method-assign]
    assert service.stop_all() == 0
    assert row.container_name in memory_containers(service).containers
    now = service.get_row(row.id)
    assert (now.status, now.reason) == ("stopped", "controller shut down")
    memory_containers(service).remove_container = real_remove  # type: ignore[method-assign]
    service.reconcile()  # the next controller's
    assert memory_containers(service).containers == {}
    assert service.get_row(row.id).reason == "controller shut down"


def test_inside_a_container_a_host_port_is_drawn_and_kept(tmp_path: Path) -> None:
    # The engine's own pick (port 0) moves on every restart: never left to it.
    service = _service(tmp_path)
    service.settings.choose_host_ports = False
    row = service.start(BackendRequest(environment="e", type="http"))
    relay = relay_name(row.container_name)
    host, port = memory_containers(service).specs[relay].ports[5678]
    assert host == "127.0.0.1"
    assert port in HOST_PORTS
    assert service.get_row(row.id).config.port == port


class _Refusing(MemoryContainers):
    """An engine that refuses at create (a bad configuration) or fails at start."""

    def __init__(self, at: str, *, cleanup_fails: bool = False) -> None:
        super().__init__(healthy=True)
        self.at = at
        self.cleanup_fails = cleanup_fails

    def create_container(self, spec: ContainerSpec) -> str:
        if self.at == "create":
            raise ContainerConfigRefused("Range of CPUs is from 0.01 to 2.00")
        return super().create_container(spec)

    def start_container(self, container_id: str) -> None:
        raise ContainerEngineError("port is already allocated")

    def remove_container(self, name: str) -> None:
        if self.cleanup_fails:
            raise ContainerEngineError("the engine went away")
        super().remove_container(name)


@pytest.mark.parametrize(
    ("at", "error", "message"),
    [
        ("create", InvalidRequest, "the engine refused the backend: Range of CPUs"),
        ("start", Unavailable, "could not start backend: port is already allocated"),
    ],
)
def test_a_refused_start_leaves_no_row_and_no_container(
    tmp_path: Path, at: str, error: type[Exception], message: str
) -> None:
    service = _service(tmp_path)
    engine = _Refusing(at)
    docker_engine(service).containers = engine
    with pytest.raises(error, match=message):
        service.start(
            BackendRequest(environment="e", type="http", limits=BackendLimits(cpus=64))
        )
    assert service.store.backends() == []
    assert engine.containers == {}
    assert list((tmp_path / "sock").glob("*")) == []


def test_a_refused_start_whose_cleanup_fails_keeps_its_row_for_reconciliation(
    tmp_path: Path,
) -> None:
    service = _service(tmp_path)
    docker_engine(service).containers = _Refusing("start", cleanup_fails=True)
    with pytest.raises(Unavailable):
        service.start(BackendRequest(environment="e", type="pipe"))
    (row,) = service.store.backends()
    assert row.status == "exited"
    assert row.reason == "failed: port is already allocated"


def test_a_listing_leaves_out_a_backend_removed_while_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pool shrinking or a stop removes rows at any moment: GET /backends once
    # answered 404 for a member removed between reading the rows and refreshing them.
    service = _service(tmp_path)
    kept = service.start(BackendRequest(environment="e", type="pipe"))
    gone = service.start(BackendRequest(environment="e", type="http"))
    read_before_the_removal = service.store.backends()
    assert service.store.delete_backend(gone.id)
    monkeypatch.setattr(service.store, "backends", lambda: read_before_the_removal)
    assert [row.id for row in service.all()] == [kept.id]
