"""BackendService state logic against an in-memory BackendContainers."""

from collections.abc import Mapping
from pathlib import Path

import pytest

from beephost_controller.backends import (
    LABEL_BACKEND_ID,
    LABEL_CONTROLLER,
    LABEL_MANAGED,
    BackendRequest,
    BackendService,
    status_of,
)
from beephost_controller.metrics import ControllerMetrics
from beephost_controller.runtime.containers import ContainerSpec, ContainerState
from beephost_controller.settings import Settings
from beephost_controller.store import EnvironmentRow, SqliteStore


class MemoryContainers:
    def __init__(self) -> None:
        self.containers: dict[str, ContainerState] = {}
        self.networks: dict[str, Mapping[str, str]] = {}

    def create_network(self, name: str, labels: Mapping[str, str]) -> None:
        self.networks[name] = dict(labels)

    def remove_network(self, name: str) -> None:
        self.networks.pop(name, None)

    def create_container(self, spec: ContainerSpec) -> str:
        cid = f"c{len(self.containers)}"
        self.containers[spec.name] = ContainerState(
            cid,
            spec.name,
            dict(spec.labels),
            "created",
            None,
            0,
            False,
            0,
            {5678: 40000},
        )
        return cid

    def _find(self, ref: str) -> str | None:
        return next((n for n, s in self.containers.items() if ref in (n, s.id)), None)

    def start_container(self, ref: str) -> None:
        name = self._find(ref)
        assert name is not None
        old = self.containers[name]
        self.containers[name] = ContainerState(
            old.id, name, old.labels, "running", "healthy", 0, False, 0, old.ports
        )

    def container_state(self, ref: str) -> ContainerState | None:
        name = self._find(ref)
        return None if name is None else self.containers[name]

    def remove_container(self, ref: str) -> None:
        name = self._find(ref)
        if name is not None:
            del self.containers[name]

    def container_logs(self, ref: str, tail: int) -> str:
        return ""

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerState]:
        return [
            s
            for s in self.containers.values()
            if all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def list_networks(self, labels: Mapping[str, str]) -> list[str]:
        return [
            n
            for n, lab in self.networks.items()
            if all(lab.get(k) == v for k, v in labels.items())
        ]


@pytest.fixture
def service(tmp_path: Path) -> BackendService:
    settings = Settings.model_validate(
        {"database": tmp_path / "db", "socket_root": tmp_path / "sock"}
    )
    store = SqliteStore(settings.database)
    store.insert_environment(
        EnvironmentRow("e", "3.11", [], False, False, "ready", lock="", image="img:1")
    )
    return BackendService(settings, store, MemoryContainers(), ControllerMetrics())


def _containers(service: BackendService) -> MemoryContainers:
    assert isinstance(service.containers, MemoryContainers)
    return service.containers


def test_start_records_then_reports_ready(service: BackendService) -> None:
    row = service.start(BackendRequest(environment="e", type="http"))
    assert row.status == "ready"
    assert row.endpoint == "http://127.0.0.1:40000"
    # No network asked: a per-backend no-masquerade bridge, named like the container.
    assert row.container_name in _containers(service).networks


def test_reconcile_adopts_removes_orphans_marks_missing(
    service: BackendService,
) -> None:
    kept = service.start(BackendRequest(environment="e", type="http"))
    gone = service.start(BackendRequest(environment="e", type="pipe"))
    mem = _containers(service)
    mem.remove_container(gone.container_name)
    mem.containers["orphan"] = ContainerState(
        "cx",
        "orphan",
        {LABEL_MANAGED: "true", LABEL_CONTROLLER: "default", LABEL_BACKEND_ID: "b-x"},
        "running",
        None,
        0,
        False,
        0,
        {},
    )
    mem.containers["other"] = ContainerState(
        "co", "other", {LABEL_MANAGED: "true", LABEL_CONTROLLER: "x"}, "running",
        None, 0, False, 0, {},
    )  # fmt: skip
    counts = service.reconcile()
    assert counts == {"adopted": 1, "orphan_removed": 1, "missing": 1}
    assert "orphan" not in mem.containers
    assert "other" in mem.containers  # another controller's: untouched
    assert service.get_row(kept.id).status == "ready"
    missing = service.get_row(gone.id)
    assert (missing.status, missing.reason) == ("exited", "missing")


def test_stop_removes_container_network_and_row(service: BackendService) -> None:
    row = service.start(BackendRequest(environment="e", type="rpc"))
    service.stop(row.id)
    assert not _containers(service).containers
    assert not _containers(service).networks
    assert service.store.backend(row.id) is None


@pytest.mark.parametrize(
    ("status", "health", "code", "oom", "expected"),
    [
        ("running", "healthy", 0, False, ("ready", None)),
        ("running", "starting", 0, False, ("starting", None)),
        ("running", "unhealthy", 0, False, ("unhealthy", None)),
        ("exited", None, 137, True, ("exited", "oom_killed")),
        ("exited", None, 1, False, ("exited", "crashed")),
        ("exited", None, 0, False, ("exited", "stopped")),
    ],
)
def test_status_of(
    status: str,
    health: str | None,
    code: int,
    oom: bool,
    expected: tuple[str, str | None],
) -> None:
    state = ContainerState("i", "n", {}, status, health, code, oom, 0, {})
    assert status_of(state) == expected
    assert status_of(None) == ("exited", "missing")
