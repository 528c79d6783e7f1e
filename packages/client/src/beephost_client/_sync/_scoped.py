"""``with`` for the blocking client's objects: the block ends what the object holds.

GENERATED from ``_async/_scoped.py`` by ``packages/client/scripts/unasync.py``: do not
edit (the docstrings there describe both).
"""

from typing import Self


class Scoped:
    """``with obj`` gives ``obj``; leaving the block, however it ends, runs
    ``obj._leave()``: it closes clients, sessions and streams, and releases remote
    objects (whose public names all belong to the remote object, so a proxy cannot
    have a closing method of its own).
    """

    # Empty, so that remote-object proxies keep their slots and no __dict__.
    __slots__ = ()

    def _leave(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._leave()
