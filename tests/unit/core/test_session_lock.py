"""The session lock: first come, first served, and a hand-off that sends the next
request before its waiter resumes."""

import asyncio

import pytest

from beephost_core.session_lock import SessionLock, Turn


async def test_waiters_get_the_lock_in_arrival_order() -> None:
    lock: SessionLock[str, str] = SessionLock()
    order: list[int] = []

    async def hold(n: int) -> None:
        await lock.acquire()
        order.append(n)
        await asyncio.sleep(0)
        lock.release()

    await lock.acquire()
    tasks = [asyncio.create_task(hold(n)) for n in range(4)]
    await asyncio.sleep(0)
    lock.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]
    assert not lock.locked()


async def test_a_hand_off_sends_for_the_first_waiter_and_gives_it_the_lock() -> None:
    lock: SessionLock[str, str] = SessionLock()
    await lock.acquire()
    first: Turn[str, str] = Turn("first")
    second: Turn[str, str] = Turn("second")
    waiting = [asyncio.create_task(lock.acquire(turn)) for turn in (first, second)]
    await asyncio.sleep(0)
    sent: list[object] = []

    def send(turn: Turn[str, str]) -> str:
        sent.append(turn.request)
        return f"sent {turn.request}"

    assert lock.hand_off(send)
    await waiting[0]
    assert sent == ["first"]
    assert first.sent == "sent first"
    assert lock.locked()
    assert not waiting[1].done()
    # The new holder ends as usual: the next waiter gets the lock unsent.
    lock.release()
    await waiting[1]
    assert second.sent is None
    lock.release()
    assert not lock.locked()


async def test_no_hand_off_without_a_waiter_or_when_send_declines() -> None:
    lock: SessionLock[str, str] = SessionLock()
    await lock.acquire()
    assert not lock.hand_off(lambda turn: "sent")
    turn: Turn[str, str] = Turn("streamed")
    waiting = asyncio.create_task(lock.acquire(turn))
    await asyncio.sleep(0)
    assert not lock.hand_off(lambda turn: None)
    assert not waiting.done()
    assert turn.sent is None
    lock.release()
    await waiting
    lock.release()
    assert not lock.locked()


async def test_a_cancelled_waiter_is_skipped() -> None:
    lock: SessionLock[str, str] = SessionLock()
    await lock.acquire()
    gone: Turn[str, str] = Turn("gone")
    next_: Turn[str, str] = Turn("next")
    cancelled = asyncio.create_task(lock.acquire(gone))
    waiting = asyncio.create_task(lock.acquire(next_))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert lock.hand_off(lambda turn: f"sent {turn.request}")
    await waiting
    assert next_.sent == "sent next"
    assert gone.sent is None


async def test_cancelled_as_the_lock_was_granted_passes_it_on() -> None:
    lock: SessionLock[str, str] = SessionLock()
    await lock.acquire()
    first = asyncio.create_task(lock.acquire())
    second = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    lock.release()  # granted to the first, which is cancelled before it resumes
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert lock.locked()
    lock.release()
    assert not lock.locked()


async def test_cancelled_after_a_hand_off_keeps_the_lock_for_the_caller() -> None:
    # Its request was sent: the caller must stop it before the session moves on.
    lock: SessionLock[str, str] = SessionLock()
    await lock.acquire()
    turn: Turn[str, str] = Turn("request")
    waiting = asyncio.create_task(lock.acquire(turn))
    await asyncio.sleep(0)
    assert lock.hand_off(lambda turn: "sent")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert turn.sent == "sent"
    assert lock.locked()
    lock.release()
    assert not lock.locked()


async def test_a_holder_that_handed_off_releases_nothing() -> None:
    # Its grant is no longer the lock's: the new holder keeps the lock until it ends.
    lock: SessionLock[str, str] = SessionLock()
    grant = await lock.acquire()
    turn: Turn[str, str] = Turn("next")
    waiting = asyncio.create_task(lock.acquire(turn))
    later = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    assert lock.hand_off(lambda turn: "sent")
    next_grant = await waiting
    assert next_grant != grant
    lock.release(grant)
    assert lock.locked()
    assert not later.done()
    lock.release(next_grant)
    await later
    lock.release()
    assert not lock.locked()
