"""Code volumes: when backends get them, their fill, and their removal."""

from collections.abc import Callable
from pathlib import Path

import pytest

from beephost_controller.backends import BackendRequest, BackendService
from beephost_controller.engine.code_volumes import (
    COMPLETE,
    FILL_CHECK,
    LABEL_CODE_BYTES,
    LABEL_CODE_IMAGE,
    LABEL_CODE_PART,
    CodeVolumes,
)
from beephost_controller.images.labels import LABEL_CONTROLLER, LABEL_MANAGED
from beephost_controller.ports import ContainerEngineError
from beephost_controller.specs import RunSpec
from beephost_controller.testing import MemoryContainers
from beephost_protocol.errors import QuotaExceeded
from tests.unit.controller.support import (
    backend_service,
    docker_engine,
    memory_containers,
    ready_environment,
    stop_all_backends,
)

IMAGE_ID = "sha256:0123456789abcdef" + "0" * 48
PREFIX = "beephost-default-code-0123456789abcdef"
USR, OPT = f"{PREFIX}-usr", f"{PREFIX}-opt"
#: Another image's code volumes (``img:2``).
OTHER = "beephost-default-code-fedcba9876543210"
OTHERS = {OTHER, f"{OTHER}-usr", f"{OTHER}-opt"}
SELECTOR = {LABEL_MANAGED: "true", LABEL_CONTROLLER: "default"}


class Later:
    """A ``spawn`` that keeps the work until ``run`` (a fill in the background)."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], None]] = []

    def __call__(self, work: Callable[[], None]) -> None:
        self.pending.append(work)

    def run(self) -> None:
        while self.pending:
            self.pending.pop(0)()


def engine(driver: str = "fuse-overlayfs") -> MemoryContainers:
    containers = MemoryContainers()
    containers.driver = driver
    containers.images["img:1"] = IMAGE_ID
    containers.images["img:2"] = "sha256:fedcba9876543210" + "1" * 48
    return containers


@pytest.fixture
def containers() -> MemoryContainers:
    """An engine on fuse-overlayfs with two images, ``img:1`` and ``img:2``."""
    return engine()


def service_on(
    tmp_path: Path,
    containers: MemoryContainers,
    *,
    mode: str = "auto",
    spawn: Callable[[Callable[[], None]], None] | None = None,
) -> BackendService:
    return backend_service(
        tmp_path,
        containers=containers,
        environments=[ready_environment(image="img:1")],
        settings={"code_volumes": mode},
        spawn=spawn,
    )


def start(service: BackendService, *, pooled: bool = False) -> dict[str, str]:
    """A start's read-only code volumes (volume -> directory)."""
    row = service.start(BackendRequest(environment="e", type="http", pooled=pooled))
    return dict(memory_containers(service).specs[row.container_name].shared_volumes)


def test_the_first_start_fills_in_the_background_and_the_next_mount(
    tmp_path: Path, containers: MemoryContainers
) -> None:
    later = Later()
    service = service_on(tmp_path, containers, spawn=later)
    assert start(service) == {}  # no start waits for a copy
    assert start(service) == {}  # a fill under way: not a second one
    assert len(later.pending) == 1
    later.run()
    assert containers.fills == [("img:1", {USR: "/usr", OPT: "/opt"})]
    assert start(service) == {USR: "/usr", OPT: "/opt"}
    own = {**SELECTOR, LABEL_CODE_IMAGE: IMAGE_ID}
    assert containers.volumes[USR] == {**own, LABEL_CODE_PART: "usr"}
    assert containers.volumes[OPT] == {**own, LABEL_CODE_PART: "opt"}
    assert containers.volumes[PREFIX] == {
        **own,
        LABEL_CODE_PART: COMPLETE,
        LABEL_CODE_BYTES: "1048576",
    }
    assert len(containers.fills) == 1


def test_a_start_refused_for_room_begins_no_fill(
    tmp_path: Path, containers: MemoryContainers
) -> None:
    later = Later()
    service = backend_service(
        tmp_path,
        containers=containers,
        environments=[ready_environment(image="img:1")],
        settings={"max_backends": 1},
        spawn=later,
    )
    service.start(BackendRequest(environment="e", type="pipe"))
    later.run()  # the first start's fill
    containers.images["img:1"] = "sha256:" + "2" * 64  # the image rebuilt
    with pytest.raises(QuotaExceeded):
        service.start(BackendRequest(environment="e", type="http"))
    assert later.pending == []
    assert len(containers.fills) == 1


@pytest.mark.parametrize(
    ("driver", "mode", "mounted"),
    [
        ("fuse-overlayfs", "auto", True),
        ("vfs", "auto", True),
        ("overlay2", "auto", False),
        ("overlay2", "on", True),
        ("fuse-overlayfs", "off", False),
    ],
)
def test_the_mode_and_the_engines_driver_decide(
    tmp_path: Path, driver: str, mode: str, mounted: bool
) -> None:
    containers = engine(driver)
    service = service_on(tmp_path, containers, mode=mode)
    start(service)  # fills at once (support's spawn)
    assert bool(start(service)) is mounted
    assert bool(containers.fills) is mounted


def test_a_new_controller_mounts_a_complete_fill_without_copying_again(
    tmp_path: Path, containers: MemoryContainers
) -> None:
    start(service_on(tmp_path / "a", containers))
    assert len(containers.fills) == 1
    again = service_on(tmp_path / "b", containers, spawn=Later())
    assert start(again) == {USR: "/usr", OPT: "/opt"}
    assert len(containers.fills) == 1


def test_a_fill_a_crash_cut_short_is_made_again(
    tmp_path: Path, containers: MemoryContainers
) -> None:
    # Its volumes exist, its marker does not: the copy may be partial.
    containers.create_volume(USR, {**SELECTOR, LABEL_CODE_PART: "usr"})
    containers.create_volume(OPT, {**SELECTOR, LABEL_CODE_PART: "opt"})
    service = service_on(tmp_path, containers)
    # The fill runs at once here (support's spawn): the start finds it done.
    assert start(service) == {USR: "/usr", OPT: "/opt"}
    assert len(containers.fills) == 1
    assert containers.volumes[PREFIX][LABEL_CODE_PART] == COMPLETE


def test_a_failed_fill_leaves_nothing_and_the_next_start_tries_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, containers: MemoryContainers
) -> None:
    fill = containers.fill_volumes

    def refused(fill: RunSpec) -> str:
        raise ContainerEngineError("no space left on device")

    containers.fill_volumes = refused  # type: ignore[method-assign]
    service = service_on(tmp_path, containers)
    assert start(service) == {}
    assert "no space left on device" in caplog.text
    assert containers.volumes.keys().isdisjoint({USR, OPT, PREFIX})
    containers.fill_volumes = fill  # type: ignore[method-assign]
    start(service)
    assert start(service) == {USR: "/usr", OPT: "/opt"}


def test_the_marker_carries_the_bytes_the_check_measured(
    tmp_path: Path, containers: MemoryContainers
) -> None:
    containers.fill_output = "123456789\n"
    service = service_on(tmp_path, containers)
    volumes = docker_engine(service).code_volumes
    assert volumes.disk_use() == {}
    start(service)
    assert containers.volumes[PREFIX][LABEL_CODE_BYTES] == "123456789"
    assert volumes.disk_use() == {IMAGE_ID: 123456789}


def test_a_check_that_says_no_size_is_a_failed_fill(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, containers: MemoryContainers
) -> None:
    containers.fill_output = "Traceback (most recent call last): ...\n"
    service = service_on(tmp_path, containers)
    assert start(service) == {}
    assert "the fill's check said" in caplog.text
    assert containers.volumes.keys().isdisjoint({USR, OPT, PREFIX})
    assert docker_engine(service).code_volumes.disk_use() == {}


def test_the_check_measures_both_directories_from_the_envs_interpreter() -> None:
    python, isolated, _, script, *paths = FILL_CHECK
    assert (python, isolated, paths) == ("/opt/env/bin/python", "-I", ["/usr", "/opt"])
    compile(script, "<fill check>", "exec")  # the script the container runs parses


def test_an_engine_that_cannot_say_its_driver_gets_none_and_is_asked_again(
    tmp_path: Path, containers: MemoryContainers
) -> None:
    asked: list[str] = []

    def down() -> str:
        asked.append("driver")
        raise ContainerEngineError("engine unreachable")

    containers.storage_driver = down  # type: ignore[method-assign]
    volumes = CodeVolumes(containers, "auto", "p", SELECTOR, spawn=Later())
    assert volumes.mounts("img:1") == {}
    assert volumes.mounts("img:1") == {}
    assert asked == ["driver", "driver"]


def test_the_volumes_of_a_gone_image_are_removed_those_in_use_kept(
    tmp_path: Path, containers: MemoryContainers
) -> None:
    service = service_on(tmp_path, containers)
    start(service)
    docker_engine(service).code_volumes.mounts("img:2")
    assert containers.volumes.keys() >= OTHERS
    stop_all_backends(service)  # Docker removes no image a container uses
    del containers.images["img:1"]
    assert docker_engine(service).code_volumes.remove_unused({"img:2"}) == [
        "0123456789abcdef"
    ]
    assert containers.volumes.keys().isdisjoint({USR, OPT, PREFIX})
    assert containers.volumes.keys() >= OTHERS

    def in_use(name: str) -> None:
        raise ContainerEngineError(f"volume {name} is in use")

    del containers.images["img:2"]
    containers.remove_volume = in_use  # type: ignore[method-assign]
    assert docker_engine(service).code_volumes.remove_unused({"img:2"}) == []
    assert containers.volumes.keys() >= OTHERS


def test_reconcile_keeps_the_code_volumes_of_present_images(
    tmp_path: Path, containers: MemoryContainers
) -> None:
    service = service_on(tmp_path, containers)
    start(service)
    service.reconcile()
    assert {USR, OPT, PREFIX} <= containers.volumes.keys()
    stop_all_backends(service)
    service.reconcile()
    assert {USR, OPT, PREFIX} <= containers.volumes.keys(), "its image is still there"
    del containers.images["img:1"]
    service.reconcile()
    assert containers.volumes.keys().isdisjoint({USR, OPT, PREFIX})


def test_a_shutdown_that_stops_the_backends_removes_the_code_volumes(
    tmp_path: Path, containers: MemoryContainers
) -> None:
    service = service_on(tmp_path, containers)
    start(service)
    start(service)
    containers.create_volume("someone-elses", {})
    service.stop_all()
    assert not [n for n in containers.volumes if "-code-" in n]
    assert "someone-elses" in containers.volumes


def test_removing_them_all_waits_for_a_fill_at_most_as_long_as_told(
    tmp_path: Path, containers: MemoryContainers
) -> None:
    later = Later()
    volumes = CodeVolumes(containers, "on", "beephost-default", SELECTOR, spawn=later)
    volumes.mounts("img:1")
    later.run()
    assert volumes.wait_filled(0)
    volumes.mounts("img:2")  # a fill that never ends here
    assert not volumes.wait_filled(0.01)
    volumes.remove_all(wait=0.01)
    assert not [n for n in containers.volumes if "-code-" in n]


def test_a_pool_member_waits_for_the_fill_a_cold_start_does_not(
    tmp_path: Path,
) -> None:
    service = service_on(tmp_path, engine())  # fills at once (support's spawn)
    assert start(service, pooled=True) == {USR: "/usr", OPT: "/opt"}
    later = Later()
    volumes = CodeVolumes(engine(), "on", "beephost-default", SELECTOR, spawn=later)
    assert volumes.mounts("img:1") == {}  # a cold start: no wait
    assert volumes.mounts("img:1", wait=0.01) == {}  # a wait has its bound
    later.run()
    assert volumes.mounts("img:1") == {USR: "/usr", OPT: "/opt"}
