"""Backend lifetimes: a backend is stopped, reason ``expired``, when its ``ttl`` ends;
its row stays to say so — pure logic against an in-memory engine and a set clock."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from beephost_controller.backends import BackendRequest, BackendService
from beephost_controller.ports import ContainerEngineError, ContainerState
from beephost_controller.rows import BackendRow
from beephost_controller.schemas.backends import BackendCreate
from beephost_controller.testing import MemoryContainers, SetClock
from beephost_protocol.errors import Unavailable
from tests.unit.controller.support import (
    backend_service,
    docker_engine,
    memory_containers,
)


def _service(tmp_path: Path, clock: SetClock, **settings: object) -> BackendService:
    return backend_service(tmp_path, clock=clock, settings=settings)


def test_a_backend_is_stopped_when_its_ttl_ends_and_says_why(tmp_path: Path) -> None:
    clock = SetClock()
    service = _service(tmp_path, clock)
    row = service.start(BackendRequest(environment="e", type="http", ttl=60))
    kept = service.start(BackendRequest(environment="e", type="pipe", ttl=600))
    assert row.expires_at == clock.now + 60
    clock.now += 59.9
    service.supervise()
    assert service.get_row(row.id).status == "ready"
    clock.now += 0.1
    service.supervise()
    expired = service.get_row(row.id)
    assert (expired.status, expired.reason) == ("stopped", "expired")
    engine = memory_containers(service)
    assert row.container_name not in engine.containers
    assert not [v for v in engine.volumes if v.startswith(row.container_name)]
    assert service.get_row(kept.id).status == "ready"
    stops = service.metrics.registry.get_sample_value(
        "beephost_controller_backend_stops_total", {"type": "http", "reason": "expired"}
    )
    assert stops == 1.0
    service.supervise()  # an expired backend stays as it is: no second stop
    assert service.get_row(row.id).reason == "expired"
    assert stops == service.metrics.registry.get_sample_value(
        "beephost_controller_backend_stops_total", {"type": "http", "reason": "expired"}
    )
    service.stop(row.id)  # deleting it removes the row
    assert service.store.backend(row.id) is None


def test_the_controller_default_applies_and_zero_means_no_limit(
    tmp_path: Path,
) -> None:
    clock = SetClock()
    default = _service(tmp_path / "a", clock)
    assert default.settings.backend_ttl == 86400
    row = default.start(BackendRequest(environment="e", type="http"))
    assert (row.ttl, row.expires_at) == (86400, clock.now + 86400)
    unlimited = _service(tmp_path / "b", clock, backend_ttl=0)
    row = unlimited.start(BackendRequest(environment="e", type="http"))
    assert (row.ttl, row.expires_at) == (None, None)
    clock.now += 10 * 86400
    unlimited.supervise()
    assert unlimited.get_row(row.id).status == "ready"


def test_an_interrupted_expiry_is_finished_by_reconciliation(tmp_path: Path) -> None:
    clock = SetClock()
    service = _service(tmp_path, clock)
    row = service.start(BackendRequest(environment="e", type="rpc", ttl=5))
    engine = memory_containers(service)
    clock.now += 5
    docker = docker_engine(service)
    real_remove = docker.remove

    def crash(row: BackendRow) -> None:
        raise KeyboardInterrupt("the controller died mid-expiry")

    docker.remove = crash  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        service.supervise()
    assert row.container_name in engine.containers
    docker.remove = real_remove  # type: ignore[method-assign]
    service.reconcile()
    assert row.container_name not in engine.containers
    assert service.get_row(row.id).reason == "expired"


@pytest.mark.parametrize("ttl", [0, -1, 30 * 86400 + 1])
def test_a_ttl_out_of_range_is_refused(ttl: float) -> None:
    with pytest.raises(ValidationError):
        BackendCreate.model_validate({"environment": "e", "type": "http", "ttl": ttl})


def test_a_stop_the_engine_cannot_finish_is_unavailable_and_recorded(
    tmp_path: Path,
) -> None:
    service = _service(tmp_path, SetClock())
    row = service.start(BackendRequest(environment="e", type="pipe"))

    def refuse(ref: str) -> None:
        raise ContainerEngineError(f"remove container {ref}: the engine is busy")

    memory_containers(service).remove_container = refuse  # type: ignore[method-assign]
    with pytest.raises(Unavailable, match="the stop is recorded"):
        service.stop(row.id)
    kept = service.get_row(row.id)
    assert (kept.status, kept.reason) == ("stopped", "stopping")


def test_a_backend_idle_for_its_timeout_is_stopped_and_says_why(
    tmp_path: Path,
) -> None:
    service = _service(tmp_path, SetClock())
    row = service.start(BackendRequest(environment="e", type="rpc", idle_timeout=60))
    busy = service.start(BackendRequest(environment="e", type="pipe", idle_timeout=60))
    assert (row.idle_timeout, service.settings.backend_idle_timeout) == (60, 3600)
    engine = memory_containers(service)
    engine.report_idle(row.container_name, 59)
    engine.report_idle(busy.container_name, 0)
    service.supervise()
    assert service.get_row(row.id).status == "ready"
    engine.report_idle(row.container_name, 60)
    service.supervise()
    stopped = service.get_row(row.id)
    assert (stopped.status, stopped.reason) == ("stopped", "idle")
    assert row.container_name not in engine.containers
    assert service.get_row(busy.id).status == "ready"
    assert (
        service.metrics.registry.get_sample_value(
            "beephost_controller_backend_stops_total", {"type": "rpc", "reason": "idle"}
        )
        == 1.0
    )


class _Broken(MemoryContainers):
    """An engine that cannot say what became of one container (a client's bug, a
    stream cut in a way no engine error names)."""

    def __init__(self) -> None:
        super().__init__(healthy=True)
        self.broken: set[str] = set()

    def container_state(self, ref: str) -> ContainerState | None:
        if self._find(ref) in self.broken:
            raise RuntimeError(f"no state for {ref}")
        return super().container_state(ref)


def test_one_backend_that_fails_its_sweep_leaves_the_others_supervised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = _Broken()
    service = backend_service(tmp_path, containers=engine, clock=SetClock())
    broken = service.start(BackendRequest(environment="e", type="http"))
    idle = service.start(BackendRequest(environment="e", type="rpc", idle_timeout=5))
    engine.broken.add(broken.container_name)
    engine.report_idle(idle.container_name, 5)
    service.supervise()
    stopped = service.get_row(idle.id)
    assert (stopped.status, stopped.reason) == ("stopped", "idle")
    assert f"supervising backend {broken.id} failed" in caplog.text


def test_no_report_or_no_timeout_never_stops_a_backend(tmp_path: Path) -> None:
    service = _service(tmp_path, SetClock(), backend_idle_timeout=0)
    quiet = service.start(BackendRequest(environment="e", type="http"))
    silent = service.start(BackendRequest(environment="e", type="http", idle_timeout=5))
    assert quiet.idle_timeout is None
    engine = memory_containers(service)
    engine.report_idle(quiet.container_name, 10**6)
    engine.report_idle(silent.container_name, None)  # an older image reports nothing
    service.supervise()
    assert {service.get_row(b.id).status for b in (quiet, silent)} == {"ready"}
