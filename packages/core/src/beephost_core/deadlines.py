"""One loop timer per worker for the deadlines of its requests.

A request used to create and cancel a timer of its own (a uvloop ``TimerHandle`` each:
about 7k instructions per round trip, callgrind). Most requests end long before their
deadline, so a timer armed for an earlier request still lies before the next one's
deadline and is kept: when it fires it expires the running request if that one is due,
or arms itself again at the running request's deadline. A worker runs one request at
a time, so one timer serves all of them.
"""

import asyncio
from typing import Any


class DeadlineTimer:
    """Fails the watched future with ``TimeoutError`` at its deadline (loop time)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._fires_at = 0.0
        self._deadline = 0.0
        self._future: asyncio.Future[Any] | None = None

    def watch(self, deadline: float, future: "asyncio.Future[Any]") -> None:
        """Watch ``future`` until ``deadline``, in place of the one watched before."""
        self._deadline, self._future = deadline, future
        if self._handle is None or self._fires_at > deadline:
            self._arm(deadline)

    def unwatch(self, future: "asyncio.Future[Any]") -> None:
        """``future``'s request ended: nothing is due for it (the timer may stay
        armed). A later request's watch (one handed the worker already) is kept."""
        if self._future is future:
            self._future = None

    def close(self) -> None:
        self._future = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    @property
    def armed(self) -> bool:
        return self._handle is not None

    def _arm(self, at: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._fires_at = at
        self._handle = self._loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._handle = None
        future = self._future
        if future is None or future.done():
            return  # idle: the next request arms it again
        if self._deadline <= self._fires_at:
            future.set_exception(TimeoutError())
        else:
            self._arm(self._deadline)
