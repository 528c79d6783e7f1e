"""``async with`` for the client's objects: the block ends what the object holds.

This file is the source of ``beephost_client/_sync/_scoped.py``, which
``packages/client/scripts/unasync.py`` generates from it.
"""

from typing import Self


class AsyncScoped:
    """``async with obj`` gives ``obj``; leaving the block, however it ends, runs
    ``obj._leave()``: it closes clients, sessions and streams, and releases remote
    objects (whose public names all belong to the remote object, so a proxy cannot
    have a closing method of its own).
    """

    # Empty, so that remote-object proxies keep their slots and no __dict__.
    __slots__ = ()

    async def _leave(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._leave()
