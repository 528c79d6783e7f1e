"""A ready server hands its start-up garbage and free heap back (beephost_core.memory)."""

import asyncio
import gc
from collections.abc import Iterator

import pytest

from beephost_core import memory


@pytest.fixture(autouse=True)
def _unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_settle_collects_freezes_and_trims() -> None:
    class Node:
        pass

    node = Node()
    node.self = node  # type: ignore[attr-defined]
    collected = []
    gc.callbacks.append(lambda phase, info: collected.append(info))
    try:
        del node
        assert memory.settle() is True  # glibc: malloc_trim ran
    finally:
        gc.callbacks.pop()
    assert any(info["collected"] for info in collected)
    assert gc.get_freeze_count() > 0


def test_settle_later_runs_on_the_loop() -> None:
    async def main() -> bool:
        handle = memory.settle_later(0.01)
        assert gc.get_freeze_count() == 0
        await asyncio.sleep(0.05)
        return handle.cancelled() is False and gc.get_freeze_count() > 0

    gc.unfreeze()
    assert asyncio.run(main())


def test_settle_turns_the_collector_back_on() -> None:
    # A server's main turns it off for its imports; settling is when it comes back.
    gc.disable()
    try:
        memory.settle()
        assert gc.isenabled()
    finally:
        gc.enable()
