"""ControllerSystem, the composition root: it starts its supervisor and pool filler
once the rows are reconciled, and stops them, the jobs and the store in order."""

import asyncio
import threading
from pathlib import Path

import pytest

from beephost_controller.resolver import Lock
from beephost_controller.settings import Settings
from beephost_controller.system import ControllerSystem
from beephost_controller.testing import MemoryContainers, MemoryImageBuilder

pytestmark = pytest.mark.anyio


def _filler() -> threading.Thread | None:
    return next((t for t in threading.enumerate() if t.name == "beephost-pools"), None)


async def test_startup_then_shutdown_in_order(tmp_path: Path) -> None:
    settings = Settings(database=tmp_path / "ctl.db", supervise_interval=0.05)
    containers = MemoryContainers()
    system = ControllerSystem(
        settings,
        builder=MemoryImageBuilder(),
        resolver=lambda requirements, python: Lock(""),
        containers=containers,
    )
    assert not system.reconciled  # the constructor does no I/O
    await system.startup()
    try:
        for _ in range(200):
            if system.reconciled and _filler() is not None:
                break
            await asyncio.sleep(0.01)
        assert system.reconciled
        filler = _filler()
        assert filler is not None
        assert filler.is_alive()
    finally:
        await system.shutdown()
    assert not filler.is_alive()
    with pytest.raises(Exception, match="closed"):
        system.store.backends()
