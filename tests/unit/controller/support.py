"""What the controller tests share: environment rows, and a BackendService on a fresh
store, its environments ready, on the Docker engine over in-memory containers."""

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from beephost_controller.backends import BackendService
from beephost_controller.backends.install import PackageInstaller, PackageTools, Resolve
from beephost_controller.engine.docker_backends import DockerBackends
from beephost_controller.jobs import JobRunner
from beephost_controller.metrics import ControllerMetrics
from beephost_controller.rows import EnvironmentRow
from beephost_controller.settings import Settings
from beephost_controller.store import SqliteStore
from beephost_controller.testing import MemoryContainers


def ready_environment(
    name: str = "e",
    *,
    admin: bool = False,
    requirements: Sequence[str] = (),
    lock: str = "",
    image: str = "i",
) -> EnvironmentRow:
    """A built environment's row (CPython 3.11, no network)."""
    return EnvironmentRow(
        name, "3.11", list(requirements), False, admin, "ready", lock=lock, image=image
    )


def pending_environment(
    name: str, requirements: Sequence[str] = (), *, admin: bool = False
) -> EnvironmentRow:
    """An environment's row before its first build (CPython 3.11, no network)."""
    return EnvironmentRow(name, "3.11", list(requirements), False, admin, "pending")


def backend_service(
    tmp_path: Path,
    *,
    containers: MemoryContainers | None = None,
    environments: Sequence[EnvironmentRow] = (),
    clock: Callable[[], float] = time.time,
    probe: Callable[[str, str | None], bool] | None = None,
    settings: Mapping[str, object] | None = None,
    spawn: Callable[[Callable[[], None]], None] | None = None,
) -> BackendService:
    """A BackendService with its database and sockets under ``tmp_path``, and
    ``environments`` (default: ``ready_environment()``) in its store; ``settings``
    over the defaults. Code volumes fill at once unless ``spawn`` says otherwise. No
    relay is made ahead unless ``settings`` asks (``relay_pool``): the tests count
    the containers a start makes (tests/unit/controller/test_relay_pool.py for it)."""
    config = Settings.model_validate(
        {
            "database": tmp_path / "db",
            "socket_root": tmp_path / "sock",
            "relay_pool": 0,
            **(settings or {}),
        }
    )
    store = SqliteStore(config.database)
    for row in environments or [ready_environment()]:
        store.insert_environment(row)
    engine = DockerBackends(
        config,
        containers or MemoryContainers(),
        clock=clock,
        spawn=spawn or (lambda work: work()),
        boot_wait=0.0,
    )
    return BackendService(
        config, store, engine, ControllerMetrics(), clock=clock, probe=probe
    )


def docker_engine(service: BackendService) -> DockerBackends:
    """The service's engine, which ``backend_service`` made on Docker."""
    assert isinstance(service.engine, DockerBackends)
    return service.engine


def stop_all_backends(service: BackendService) -> None:
    """Stop each backend as a client would (``stop_all`` is the shutdown's, which also
    removes what the engine shares)."""
    for row in service.all():
        service.stop(row.id)


def memory_containers(service: BackendService) -> MemoryContainers:
    """The service's containers, which ``backend_service`` made in memory."""
    containers = docker_engine(service).containers
    assert isinstance(containers, MemoryContainers)
    return containers


def package_installer(
    backends: BackendService,
    jobs: JobRunner,
    resolve: Resolve,
    *,
    tools: PackageTools | None = None,
    cache_dir: Path | None = None,
) -> PackageInstaller:
    """An installer into ``backends``' backends, wired as the controller wires it."""
    return PackageInstaller(
        backends.engine,
        backends.store,
        backends.refresh,
        jobs,
        resolve,
        url_schemes=backends.settings.requirement_url_schemes,
        tools=tools,
        cache_dir=cache_dir,
    )
