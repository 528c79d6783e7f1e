"""What the controller tests share: environment rows, and a BackendService on a fresh
store, its environments ready, on in-memory containers."""

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from beephost_controller.backends import BackendService
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
    over the defaults. Code volumes fill at once unless ``spawn`` says otherwise."""
    config = Settings.model_validate(
        {
            "database": tmp_path / "db",
            "socket_root": tmp_path / "sock",
            **(settings or {}),
        }
    )
    store = SqliteStore(config.database)
    for row in environments or [ready_environment()]:
        store.insert_environment(row)
    return BackendService(
        config,
        store,
        containers or MemoryContainers(),
        ControllerMetrics(),
        clock=clock,
        probe=probe,
        spawn=spawn or (lambda work: work()),
    )


def memory_containers(service: BackendService) -> MemoryContainers:
    """The service's containers, which ``backend_service`` made in memory."""
    assert isinstance(service.containers, MemoryContainers)
    return service.containers
