"""The lock that runs a session's requests one at a time, in order, with a hand-off.

A session's worker runs one request at a time. With a plain ``asyncio.Lock`` the
worker waited two loop turns between two queued requests: the finished request's
coroutine resumed and released the lock, then the next one resumed and only then wrote
to the worker. Here the holder can, in the callback that received its reply, pass the
lock straight to the first waiter after sending that waiter's request: the worker
starts on it before the previous reply is even forwarded. Still one request in the
worker at a time, in arrival order; a waiter that declines (or none) leaves the lock
to ``release`` as before.
"""

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

R = TypeVar("R")  # what a waiter would have sent for it
S = TypeVar("S")  # what sending it gave back


class Turn(Generic[R, S]):
    """A waiter for the lock: ``request`` is what a hand-off would send for it (None:
    nothing, it waits for the lock alone), ``sent`` what the hand-off sent, ``grant``
    the lock's grant it holds once woken."""

    __slots__ = ("future", "grant", "request", "sent")

    def __init__(self, request: R | None = None) -> None:
        self.future: asyncio.Future[None] | None = None
        self.request = request
        self.sent: S | None = None
        self.grant = 0


class SessionLock(Generic[R, S]):
    """A first-come lock whose holder may hand it over with the next request sent."""

    def __init__(self) -> None:
        self._held = False
        self._waiters: deque[Turn[R, S]] = deque()
        #: Bumped each time the lock changes hands: a holder whose grant is no longer
        #: the lock's has handed it on, and must not release it.
        self.grants = 0

    def locked(self) -> bool:
        return self._held

    @property
    def waiting(self) -> bool:
        """Whether anyone waits (cheap: checked at every reply)."""
        return bool(self._waiters)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    async def acquire(self, turn: Turn[R, S] | None = None) -> int:
        """Wait for the lock; its grant, for :meth:`release`. Cancelled after it was
        granted: released again, unless the hand-off sent the turn's request
        (``turn.sent``), which the caller then owns with the lock and must settle."""
        if not self._held and not self._waiters:
            self._held = True
            self.grants += 1
            return self.grants
        turn = turn or Turn()
        turn.future = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await turn.future
        except asyncio.CancelledError:
            if turn.future.done() and not turn.future.cancelled():
                if turn.sent is None:
                    self.release()  # granted as it was cancelled: pass it on
            else:
                self._waiters.remove(turn)
            raise
        return turn.grant

    def release(self, grant: int | None = None) -> None:
        """Wake the first waiter (it holds the lock now), or unlock. With ``grant``
        (from :meth:`acquire`): only if the lock was not handed on since."""
        if grant is not None and grant != self.grants:
            return
        while self._waiters:
            turn = self._waiters.popleft()
            assert turn.future is not None
            if not turn.future.done():
                self._grant(turn)
                return
        self._held = False

    def hand_off(self, send: Callable[[Turn[R, S]], S | None]) -> bool:
        """From the holder, at the end of its request: ``send`` the first waiter's
        request and give it the lock. False, and nothing passed, if nobody waits or
        ``send`` returns None; the holder then releases as usual."""
        while self._waiters:
            turn = self._waiters[0]
            assert turn.future is not None
            if not turn.future.done():
                break
            self._waiters.popleft()  # cancelled while waiting
        else:
            return False
        sent = send(turn)
        if sent is None:
            return False
        self._waiters.popleft()
        turn.sent = sent
        self._grant(turn)
        return True

    def _grant(self, turn: Turn[R, S]) -> None:
        assert turn.future is not None
        self.grants += 1
        turn.grant = self.grants
        turn.future.set_result(None)
