"""Requests queued on one session: the reply of each sends the next at once (the
session hand-off), in arrival order, one at a time, against real workers."""

import asyncio
from pathlib import Path
from typing import Any

import pytest

from beephost_core import Executor
from beephost_protocol import models

pytestmark = pytest.mark.anyio

GUARD = 30  # seconds: fails a request stuck behind a 120 s one


def _count_hand_offs(executor: Executor, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every request the hand-off sent (the spy wraps the real sender)."""
    sent: list[Any] = []
    send_queued = executor._send_queued

    def spy(*args: Any) -> Any:
        result = send_queued(*args)
        if result is not None:
            sent.append(result)
        return result

    monkeypatch.setattr(executor, "_send_queued", spy)
    return sent


async def _holding(
    executor: Executor, then: str = "", session: str = models.DEFAULT_SESSION
) -> "asyncio.Task[dict[str, Any]]":
    """A request that holds the session's worker 0.3 s (then runs ``then``), started:
    requests made from now on queue behind it."""
    task = asyncio.create_task(
        executor.run(
            models.Execute(
                session=session, code=f"import time\ntime.sleep(0.3)\n{then}"
            )
        )
    )
    await asyncio.sleep(0.1)
    return task


async def test_queued_requests_run_in_arrival_order_and_see_each_others_state(
    executor: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed = _count_hand_offs(executor, monkeypatch)
    session = (await executor.run(models.SessionOpen()))["session"]
    await executor.run(models.Execute(session=session, code="seen = []"))
    first = await _holding(executor, session=session)
    tasks = [
        asyncio.create_task(
            executor.run(
                models.Evaluate(
                    session=session, expression=f"seen.append({n}) or len(seen)"
                )
            )
        )
        for n in range(19)
    ]
    await first
    results = await asyncio.gather(*tasks)
    assert [r["value"] for r in results] == list(range(1, 20))
    assert await executor.run(models.Evaluate(session=session, expression="seen")) == {
        "value": list(range(19))
    }
    assert len(handed) == 19  # each reply sent the next request itself


async def test_a_queued_streamed_exec_waits_for_its_turn_and_streams(
    executor: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed = _count_hand_offs(executor, monkeypatch)
    first = await _holding(executor, then="step = 1")
    events: list[str] = []
    streamed = asyncio.create_task(
        executor.run(
            models.Execute(code="print('step', step)", stream=True),
            lambda stream, data: events.append(data),
        )
    )
    await first
    await streamed
    assert "".join(events) == "step 1\n"
    assert handed == []  # a stream is never handed off: its events need the usual path


async def test_a_request_cancelled_after_it_was_handed_the_worker_is_stopped(
    executor: Executor, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    handed = _count_hand_offs(executor, monkeypatch)
    started = tmp_path / "started"
    await executor.run(models.Execute(code="kept = 'state kept'\nfinished = False"))
    first = await _holding(executor)
    long = (
        f"import time\ntry:\n    open({str(started)!r}, 'w').close()\n"
        "    time.sleep(120)\nexcept KeyboardInterrupt:\n"
        "    how = 'interrupted'\n    raise\nfinished = True"
    )
    second = asyncio.create_task(executor.run(models.Execute(code=long, timeout=120)))
    await first
    async with asyncio.timeout(GUARD):
        while not started.exists():  # noqa: ASYNC110 - the worker touches it
            await asyncio.sleep(0.01)
    assert len(handed) == 1
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    async with asyncio.timeout(GUARD):
        assert await executor.run(
            models.Evaluate(expression="(kept, how, finished)", timeout=120)
        ) == {"value": {"$tuple": ["state kept", "interrupted", False]}}


async def test_a_failed_request_hands_nothing_on_and_the_next_still_runs(
    executor: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed = _count_hand_offs(executor, monkeypatch)
    failing = await _holding(executor, then="1/0")
    after = asyncio.create_task(executor.run(models.Evaluate(expression="6 * 7")))
    with pytest.raises(Exception, match="ZeroDivisionError"):
        await failing
    assert await after == {"value": 42}
    assert handed == []  # an error's reply leaves the checks to the usual path


async def test_a_request_cancelled_as_it_is_handed_the_worker_is_stopped(
    executor: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cancellation lands right after the reply's callback sent it, before its
    # task resumed: the executor stops what was sent, then passes the session on.
    handed = _count_hand_offs(executor, monkeypatch)
    waiting: list[asyncio.Task[Any]] = []
    hand_off = executor._hand_off

    def hand_off_then_cancel(*args: Any) -> None:
        hand_off(*args)
        if handed and not waiting[0].cancelled():
            waiting[0].cancel()

    monkeypatch.setattr(executor, "_hand_off", hand_off_then_cancel)
    session = (await executor.run(models.SessionOpen()))["session"]
    await executor.run(
        models.Execute(session=session, code="kept = 'state kept'\nfinished = False")
    )
    first = await _holding(executor, session=session)
    long = "import time\ntime.sleep(120)\nfinished = True"
    waiting.append(
        asyncio.create_task(
            executor.run(models.Execute(session=session, code=long, timeout=120))
        )
    )
    after = asyncio.create_task(
        executor.run(
            models.Evaluate(session=session, expression="(kept, finished)", timeout=120)
        )
    )
    await first
    with pytest.raises(asyncio.CancelledError):
        await waiting[0]
    async with asyncio.timeout(GUARD):
        assert await after == {"value": {"$tuple": ["state kept", False]}}
    assert len(handed) == 1
