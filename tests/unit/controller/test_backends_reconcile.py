"""BackendService state logic against an in-memory BackendContainers."""

import io
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from beephost_controller.backends import (
    STOPPING,
    BackendRequest,
    BackendService,
    status_of,
)
from beephost_controller.engine.docker_backends import DockerBackends
from beephost_controller.engine.docker_plan import (
    LABEL_BACKEND_ID,
    LABEL_RELAY_FOR,
    relay_name,
)
from beephost_controller.images.labels import (
    KIND_BASE_IMAGE,
    KIND_ENVIRONMENT_BUILD,
    LABEL_CONTROLLER,
    LABEL_IMAGE_OWNER,
    LABEL_KIND,
    LABEL_MANAGED,
)
from beephost_controller.metrics import ControllerMetrics
from beephost_controller.ports import ContainerEngineError, ContainerState
from beephost_controller.schemas import BackendOptions
from beephost_controller.specs import ContainerSpec
from beephost_controller.testing import MemoryContainers
from beephost_protocol.errors import Unavailable
from tests.unit.controller.support import (
    backend_service,
    docker_engine,
    memory_containers,
    ready_environment,
)


@pytest.fixture
def service(tmp_path: Path) -> BackendService:
    return backend_service(tmp_path, environments=[ready_environment(image="img:1")])


@pytest.fixture
def mem(service: BackendService) -> MemoryContainers:
    """The service's in-memory engine."""
    return memory_containers(service)


def test_start_records_then_reports_ready(service: BackendService) -> None:
    row = service.start(BackendRequest(environment="e", type="http"))
    assert row.status == "ready"
    assert row.endpoint == "http://127.0.0.1:40000"
    # No network asked: the controller's shared no-masquerade, no-ICC bridge.
    assert memory_containers(service).networks == {
        "beephost-default-offline": {LABEL_MANAGED: "true", LABEL_CONTROLLER: "default"}
    }
    second = service.start(BackendRequest(environment="e", type="rpc"))
    assert second.status == "ready"
    assert list(memory_containers(service).networks) == ["beephost-default-offline"]


def test_reconcile_adopts_removes_orphans_marks_missing(
    service: BackendService, mem: MemoryContainers
) -> None:
    kept = service.start(BackendRequest(environment="e", type="http"))
    gone = service.start(BackendRequest(environment="e", type="pipe"))
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


def test_a_relay_stays_with_its_backend_and_an_orphan_one_goes(
    service: BackendService, mem: MemoryContainers
) -> None:
    kept = service.start(BackendRequest(environment="e", type="http"))
    relay = relay_name(kept.container_name)
    # The backend has no network at all; its relay publishes the port on the bridge.
    assert mem.specs[kept.container_name].network is None
    assert mem.specs[relay].network == "beephost-default-offline"
    assert mem.specs[relay].labels[LABEL_RELAY_FOR] == kept.id
    offline = "beephost-default-offline"
    mem.containers[relay] = replace(mem.containers[relay], unjoined_network=offline)
    mem.containers["beephost-default-b-gone-relay"] = replace(
        mem.containers[relay],
        id="cr",
        name="beephost-default-b-gone-relay",
        labels={**mem.containers[relay].labels, LABEL_RELAY_FOR: "b-gone"},
    )
    counts = service.reconcile()
    assert counts == {"adopted": 1, "orphan_removed": 1, "missing": 0}
    assert "beephost-default-b-gone-relay" not in mem.containers
    assert relay in mem.containers, "kept while its backend's row is"
    assert mem.joins == [relay], "a relay a crash left off its network joins it"
    service.stop(kept.id)
    assert mem.containers == {}, "a stop removes the relay with its backend"


def test_reconcile_joins_a_running_backend_a_crash_left_off_its_network(
    service: BackendService, mem: MemoryContainers
) -> None:
    started = service.start(BackendRequest(environment="e", type="http"))
    created = service.start(BackendRequest(environment="e", type="rpc"))
    assert mem.containers[started.container_name].unjoined_network is None
    offline = "beephost-default-offline"
    # Cut short after the start (running) and before it (created): only a running
    # one is joined here; a created one joins at its start.
    for name, status in (
        (started.container_name, "running"),
        (created.container_name, "created"),
    ):
        mem.containers[name] = replace(
            mem.containers[name], status=status, unjoined_network=offline
        )
    counts = service.reconcile()
    assert counts["adopted"] == 2
    assert mem.joins == [started.container_name]
    assert mem.containers[started.container_name].unjoined_network is None
    assert mem.containers[created.container_name].unjoined_network == offline


def test_stop_removes_container_and_row_and_keeps_the_shared_network(
    service: BackendService,
) -> None:
    row = service.start(BackendRequest(environment="e", type="rpc"))
    service.stop(row.id)
    assert not memory_containers(service).containers
    assert list(memory_containers(service).networks) == ["beephost-default-offline"]
    assert service.store.backend(row.id) is None


def test_reconcile_keeps_the_shared_network_and_removes_a_backends_own(
    service: BackendService, mem: MemoryContainers
) -> None:
    row = service.start(BackendRequest(environment="e", type="http"))
    labels = {LABEL_MANAGED: "true", LABEL_CONTROLLER: "default"}
    # Networks of their own, as backends had before they shared one: a running
    # backend's stays until its stop, a gone one's goes.
    mem.ensure_network(row.container_name, labels)
    mem.ensure_network("beephost-default-b-gone", labels)
    service.reconcile()
    assert set(mem.networks) == {"beephost-default-offline", row.container_name}
    service.stop(row.id)
    assert list(mem.networks) == ["beephost-default-offline"]


def test_a_stop_cut_short_by_a_crash_is_finished_at_reconcile(
    service: BackendService, mem: MemoryContainers, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = service.start(BackendRequest(environment="e", type="http"))

    def killed(ref: str) -> None:
        raise SystemExit("kill -9")  # the controller dies before Docker removes it

    monkeypatch.setattr(mem, "remove_container", killed)
    with pytest.raises(SystemExit):
        service.stop(row.id)
    monkeypatch.undo()
    assert (service.get_row(row.id).status, service.get_row(row.id).reason) == (
        "stopped",
        STOPPING,
    )
    # The next controller process, on the same store and engine, finishes the stop
    # (before: the backend stayed listed as exited, "missing", with its network).
    restarted = BackendService(
        service.settings,
        service.store,
        DockerBackends(service.settings, mem),
        ControllerMetrics(),
    )
    assert restarted.reconcile() == {"adopted": 0, "orphan_removed": 0, "missing": 0}
    assert service.store.backend(row.id) is None
    assert not mem.containers
    assert list(mem.networks) == ["beephost-default-offline"]


def test_the_supervisor_does_not_restart_a_backend_being_stopped(
    service: BackendService, mem: MemoryContainers, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = service.start(BackendRequest(environment="e", type="pipe"))
    remove = mem.remove_container
    restarted: list[str] = []

    def remove_while_supervised(ref: str) -> None:
        mem.exit(row.container_name, 137)  # `docker rm -f` kills it first
        restarted.extend(service.supervise())  # a sweep of the supervisor meanwhile
        remove(ref)

    monkeypatch.setattr(mem, "remove_container", remove_while_supervised)
    service.stop(row.id)
    assert restarted == []
    assert mem.starts == [row.container_name]
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


def test_a_backend_gets_labelled_volumes_removed_with_it(
    service: BackendService, mem: MemoryContainers
) -> None:
    row = service.start(BackendRequest(environment="e", type="http"))
    volumes = {
        f"{row.container_name}-workspace": "/workspace",
        f"{row.container_name}-packages": "/packages",
    }
    assert mem.specs[row.container_name].volumes == volumes
    for volume in volumes:
        assert mem.volumes[volume][LABEL_BACKEND_ID] == row.id
        assert mem.volumes[volume][LABEL_CONTROLLER] == "default"
    service.stop(row.id)
    assert mem.volumes == {}


def test_reconcile_removes_a_workspace_volume_nothing_owns(
    service: BackendService, mem: MemoryContainers
) -> None:
    kept = service.start(BackendRequest(environment="e", type="pipe"))
    labels = {LABEL_MANAGED: "true", LABEL_CONTROLLER: "default"}
    mem.create_volume("beephost-default-b-gone-workspace", labels)
    mem.create_volume("someone-elses", {LABEL_MANAGED: "true", LABEL_CONTROLLER: "x"})
    service.reconcile()
    assert set(mem.volumes) == {
        f"{kept.container_name}-workspace",
        f"{kept.container_name}-packages",
        "someone-elses",
    }


def test_a_failed_start_leaves_no_workspace_volume(
    service: BackendService, mem: MemoryContainers
) -> None:
    mem.create_container = _refuse  # type: ignore[method-assign]
    with pytest.raises(Unavailable):
        service.start(BackendRequest(environment="e", type="rpc"))
    assert mem.volumes == {}


def _refuse(spec: ContainerSpec) -> str:
    raise ContainerEngineError("the engine said no")


class _StatusAtCopy(MemoryContainers):
    """Records the container's status when an archive is copied into it."""

    copied_when: str | None = None

    def put_archive(self, ref: str, path: str, data: bytes) -> None:
        state = self.container_state(ref)
        self.copied_when = state.status if state else None
        super().put_archive(ref, path, data)


def test_a_backend_with_network_gets_the_ca_bundle_before_it_starts(
    service: BackendService, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = service.settings.model_copy(update={"ca_bundle": bundle})
    mem = _StatusAtCopy()
    backends = BackendService(
        settings, service.store, DockerBackends(settings, mem), ControllerMetrics()
    )
    options = BackendOptions(network=True)
    backends.start(BackendRequest(environment="e", type="pipe", options=options))
    assert mem.copied_when == "created", "copied before the server starts"
    ((_, path, data),) = mem.archives
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        (member,) = archive.getmembers()
        assert (path, member.name, member.mode) == ("/packages", "ca-bundle.pem", 0o644)
        extracted = archive.extractfile(member)
        assert extracted is not None
        assert extracted.read() == bundle.read_bytes()
    offline = backends.start(BackendRequest(environment="e", type="pipe"))
    assert offline.config.hardening.network is False
    assert len(mem.archives) == 1, "a backend without network gets none"


def _build_container(name: str, controller: str, status: str) -> ContainerState:
    """An environment-build container; it carries the managed label of its image,
    and its controller's as the image's owner."""
    labels = {
        LABEL_MANAGED: "true",
        LABEL_CONTROLLER: controller,
        LABEL_IMAGE_OWNER: controller,
        LABEL_KIND: KIND_ENVIRONMENT_BUILD,
    }
    return ContainerState(name, name, labels, status, None, 0, False, 0, {})


def test_leftover_build_containers_go_at_start_and_only_ours(
    service: BackendService, mem: MemoryContainers
) -> None:
    mem.containers["exited"] = _build_container("exited", "default", "exited")
    mem.containers["live"] = _build_container("live", "default", "running")
    mem.containers["theirs"] = _build_container("theirs", "compose", "exited")
    # A build step of the legacy builder: it carries the base image's labels, ours.
    step = _build_container("step", "default", "running")
    mem.containers["step"] = replace(
        step, labels={**step.labels, LABEL_KIND: KIND_BASE_IMAGE}
    )
    # The periodic reconcile never takes a build for an orphan: it may be running now.
    assert service.reconcile()["orphan_removed"] == 0
    assert {"exited", "live", "theirs", "step"} <= set(mem.containers)
    # At start, before the jobs resume, every build container of ours is a dead build's.
    assert docker_engine(service).remove_leftover_builds() == 2
    assert "exited" not in mem.containers
    assert "live" not in mem.containers
    assert "theirs" in mem.containers
