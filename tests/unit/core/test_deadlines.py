"""DeadlineTimer: one loop timer serves a worker's requests, one at a time."""

import asyncio

import pytest

from beephost_core.deadlines import DeadlineTimer


async def _timed_out(future: "asyncio.Future[None]") -> bool:
    """Whether the timer failed ``future`` with TimeoutError within 5 s (a wait of
    ours that runs out leaves it pending: no)."""
    await asyncio.wait({future}, timeout=5)
    return future.done() and isinstance(future.exception(), TimeoutError)


async def test_a_request_past_its_deadline_times_out() -> None:
    loop = asyncio.get_running_loop()
    timer = DeadlineTimer(loop)
    future: asyncio.Future[None] = loop.create_future()
    timer.watch(loop.time() + 0.05, future)
    assert await _timed_out(future)


async def test_a_later_request_keeps_the_armed_timer_and_gets_its_own_deadline() -> (
    None
):
    loop = asyncio.get_running_loop()
    timer = DeadlineTimer(loop)
    first: asyncio.Future[None] = loop.create_future()
    timer.watch(loop.time() + 0.05, first)
    first.set_result(None)  # answered in time
    timer.unwatch(first)
    second: asyncio.Future[None] = loop.create_future()
    timer.watch(loop.time() + 0.3, second)
    assert timer.armed  # the first request's timer, not a new one
    await asyncio.sleep(0.15)  # the first deadline passes: the second is not due
    assert not second.done()
    assert timer.armed  # armed again, at the second request's deadline
    assert await _timed_out(second)


async def test_an_earlier_deadline_than_the_armed_one_is_kept() -> None:
    loop = asyncio.get_running_loop()
    timer = DeadlineTimer(loop)
    long: asyncio.Future[None] = loop.create_future()
    timer.watch(loop.time() + 60, long)
    long.set_result(None)
    timer.unwatch(long)
    short: asyncio.Future[None] = loop.create_future()
    timer.watch(loop.time() + 0.05, short)
    assert await _timed_out(short)  # long before the first request's 60 s
    timer.close()


async def test_an_idle_worker_is_not_timed_out_and_close_disarms() -> None:
    loop = asyncio.get_running_loop()
    timer = DeadlineTimer(loop)
    answered: asyncio.Future[None] = loop.create_future()
    timer.watch(loop.time() + 0.05, answered)
    answered.set_result(None)
    timer.unwatch(answered)
    await asyncio.sleep(0.1)  # fires while idle: nothing to expire, nothing re-armed
    assert not timer.armed
    later: asyncio.Future[None] = loop.create_future()
    timer.watch(loop.time() + 60, later)
    timer.close()
    assert not timer.armed
    assert not later.done()


async def test_unwatching_a_handed_off_request_keeps_the_next_ones_deadline() -> None:
    # The next request was sent (and watched) from the previous reply's callback,
    # before the previous request's coroutine unwatched its own future.
    loop = asyncio.get_running_loop()
    timer = DeadlineTimer(loop)
    previous: asyncio.Future[None] = loop.create_future()
    timer.watch(loop.time() + 60, previous)
    previous.set_result(None)
    following: asyncio.Future[None] = loop.create_future()
    timer.watch(loop.time() + 0.05, following)
    timer.unwatch(previous)
    await asyncio.sleep(0.3)
    assert following.done()  # by the timer, not by a wait of ours
    with pytest.raises(TimeoutError):
        following.result()
    timer.close()
