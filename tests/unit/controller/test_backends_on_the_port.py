"""The backend use cases on the engine port alone: a fake ``BackendEngine`` (no
containers, no Docker layout), so what they do is theirs, whatever the engine."""

from pathlib import Path

import pytest

from beephost_controller.backends import BackendRequest, BackendService
from beephost_controller.metrics import ControllerMetrics
from beephost_controller.ports import LaunchFailed
from beephost_controller.rows import BackendRow
from beephost_controller.settings import Settings
from beephost_controller.store import SqliteStore
from beephost_controller.testing import MemoryBackends, SetClock
from beephost_protocol.errors import NotFound, Unavailable
from tests.unit.controller.support import ready_environment

START = BackendRequest(environment="e", type="http")


def _service(tmp_path: Path, engine: MemoryBackends) -> BackendService:
    settings = Settings(database=tmp_path / "db", socket_root=tmp_path / "s")
    store = SqliteStore(settings.database)
    store.insert_environment(ready_environment())
    return BackendService(
        settings, store, engine, ControllerMetrics(), clock=engine.clock
    )


def test_a_start_records_what_the_engine_launched(tmp_path: Path) -> None:
    engine = MemoryBackends(clock=SetClock(5.0))
    row = _service(tmp_path, engine).start(START)
    assert (row.status, row.endpoint) == ("ready", f"memory://{row.id}")
    assert row.container_id == engine.running[row.id].id
    assert row.created_at == 5.0


@pytest.mark.parametrize("undone", [True, False])
def test_a_failed_launch_leaves_a_row_only_for_what_stays(
    tmp_path: Path, undone: bool
) -> None:
    engine = MemoryBackends()
    service = _service(tmp_path, engine)
    engine.refuse = LaunchFailed(Unavailable("no room on the node"), undone=undone)
    with pytest.raises(Unavailable, match="no room on the node"):
        service.start(START)
    rows = service.store.backends()
    if undone:
        assert rows == []
    else:  # what stays is reconciliation's, which needs the row
        (row,) = rows
        assert (row.status, row.id in engine.running) == ("exited", True)
        assert row.reason == "failed: no room on the node"


def test_a_start_refused_after_its_plan_releases_it(tmp_path: Path) -> None:
    # The room is counted again once planned (MAX_BACKENDS): a start refused then
    # hands back what its plan took (Docker: a relay made ahead).
    engine = MemoryBackends()
    service = _service(tmp_path, engine)
    planned: list[str] = []

    def full(row: BackendRow) -> None:
        planned.append(row.id)
        raise Unavailable("the store refused it")

    service.store.insert_backend = full  # type: ignore[method-assign]
    with pytest.raises(Unavailable, match="the store refused it"):
        service.start(START)
    assert engine.released == planned
    assert len(planned) == 1
    assert engine.running == {}


@pytest.mark.parametrize("stop", ["ttl", "delete"])
def test_a_backend_stopped_while_it_launched_leaves_no_sandbox(
    tmp_path: Path, stop: str
) -> None:
    # On Kubernetes a launch first publishes its image (seconds): a lifetime can end,
    # or a DELETE come, before its pod exists; the pod made after that stop goes too.
    clock = SetClock()
    engine = MemoryBackends(clock=clock)
    service = _service(tmp_path, engine)

    def stopped_meanwhile(row: BackendRow) -> None:
        if stop == "ttl":
            clock.now = row.created_at + 5
            service.supervise()
        else:
            service.stop(row.id)

    engine.while_launching = stopped_meanwhile
    request = BackendRequest(environment="e", type="rpc", ttl=5)
    if stop == "ttl":
        row = service.start(request)
        assert (row.status, row.reason) == ("stopped", "expired")
    else:
        with pytest.raises(NotFound):
            service.start(request)
    assert engine.running == {}
    assert len(engine.removed) == 1


def test_a_backend_still_launching_is_starting_not_missing(tmp_path: Path) -> None:
    # On Kubernetes a launch first publishes its image (seconds): the supervisor's
    # refresh and every listing meanwhile find no sandbox yet.
    engine = MemoryBackends()
    service = _service(tmp_path, engine)
    seen: list[tuple[str, str | None]] = []

    def look(row: BackendRow) -> None:
        service.supervise()
        refreshed = service.refresh(row.id)
        seen.append((refreshed.status, refreshed.reason))
        seen.extend((r.status, r.reason) for r in service.all())

    engine.while_launching = look
    row = service.start(START)
    assert seen == [("starting", None), ("starting", None)]
    assert row.status == "ready"
    del engine.running[row.id]  # launched, then gone: missing now
    gone = service.refresh(row.id)
    assert (gone.status, gone.reason) == ("exited", "missing")


def test_the_supervisor_and_a_listing_each_look_in_one_sweep(tmp_path: Path) -> None:
    engine = MemoryBackends()
    service = _service(tmp_path, engine)
    for _ in range(3):
        service.start(START)
    assert engine.sweeps == 0
    service.supervise()
    assert engine.sweeps == 1
    assert len(service.all()) == 3
    assert engine.sweeps == 2


def test_the_supervisor_restarts_a_crash_through_the_engine(tmp_path: Path) -> None:
    engine = MemoryBackends()
    service = _service(tmp_path, engine)
    row = service.start(START)
    engine.exit(row.id, 1)
    assert service.supervise() == [row.id]
    assert engine.restarts == [row.id]
    assert service.get_row(row.id).restarts == 1


def test_reconciliation_adopts_removes_orphans_and_marks_the_missing(
    tmp_path: Path,
) -> None:
    engine = MemoryBackends()
    service = _service(tmp_path, engine)
    kept, lost, orphan = (service.start(START) for _ in range(3))
    del engine.running[lost.id]
    service.store.delete_backend(orphan.id)
    counts = service.reconcile()
    assert counts == {"adopted": 1, "orphan_removed": 1, "missing": 1}
    assert set(engine.running) == {kept.id}
    assert service.get_row(lost.id).reason == "missing"


def test_a_stop_all_removes_every_sandbox_then_what_they_share(tmp_path: Path) -> None:
    engine = MemoryBackends()
    service = _service(tmp_path, engine)
    rows = [service.start(START) for _ in range(2)]
    assert service.stop_all() == 2
    assert engine.running == {}
    assert engine.shared_removed
    assert {service.get_row(r.id).reason for r in rows} == {"controller shut down"}
