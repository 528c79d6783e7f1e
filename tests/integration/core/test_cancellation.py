"""A cancelled request is interrupted at once and frees its session (issue 11, item 3).

Backends cancel the request's task when its client disconnects (pipe, HTTP) or cancels
(gRPC); these tests cancel it directly, against real workers.
"""

import asyncio
from typing import Any

import pytest

from beephost_core import Executor
from beephost_protocol import models
from beephost_protocol.errors import SessionLost

pytestmark = pytest.mark.anyio

GUARD = 30  # seconds: fails a request stuck behind a 120 s one, passes a free session


async def _start(executor: Executor, code: str) -> "asyncio.Task[dict[str, Any]]":
    """Run ``code`` (which prints 'ready') with a long deadline; return once it printed."""
    ready = asyncio.Event()

    def on_event(stream: str, data: str) -> None:
        if "ready" in data:
            ready.set()

    command = models.Execute(code=code, stream=True, timeout=120)
    task = asyncio.create_task(executor.run(command, on_event))
    await ready.wait()
    return task


async def test_a_cancelled_request_is_interrupted_and_frees_the_session(
    executor: Executor,
) -> None:
    await executor.run(models.Execute(code="kept = 'state kept'\nfinished = False"))
    task = await _start(
        executor,
        "import time\nprint('ready', flush=True)\ntry:\n    time.sleep(120)\n"
        "except KeyboardInterrupt:\n    how = 'interrupted'\n    raise\n"
        "finished = True",
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The next request runs on the same worker with the state kept, and the cancelled
    # code was interrupted, not finished. Unfixed, the next request waited for the
    # cancelled one's 120 s (the guard below fails it long before).
    async with asyncio.timeout(GUARD):
        assert await executor.run(
            models.Evaluate(expression="(kept, how, finished)", timeout=120)
        ) == {"value": {"$tuple": ["state kept", "interrupted", False]}}


async def test_a_cancelled_request_that_ignores_the_interrupt_is_killed(
    executor: Executor,
) -> None:
    opened = await executor.run(models.SessionOpen())
    session = opened["session"]
    ready = asyncio.Event()

    def on_event(stream: str, data: str) -> None:
        if "ready" in data:
            ready.set()

    code = (
        "import time\nprint('ready', flush=True)\nwhile True:\n    try:\n"
        "        time.sleep(120)\n    except KeyboardInterrupt:\n        pass"
    )
    command = models.Execute(session=session, code=code, stream=True, timeout=120)
    task = asyncio.create_task(executor.run(command, on_event))
    await ready.wait()
    task.cancel()
    with pytest.raises(SessionLost) as caught:  # says more than CancelledError
        await task
    assert "ignored the interrupt" in caught.value.message
    # Killed after the grace: the session's next request hears that its state is lost.
    with pytest.raises(SessionLost):
        async with asyncio.timeout(GUARD):
            await executor.run(
                models.Evaluate(session=session, expression="1", timeout=120)
            )


async def test_a_cancelled_queued_request_never_runs(executor: Executor) -> None:
    first = await _start(
        executor, "import time\nprint('ready', flush=True)\ntime.sleep(120)"
    )
    queued = asyncio.create_task(
        executor.run(models.Execute(code="ran = True", timeout=120))
    )
    await asyncio.sleep(0)  # let it queue on the session
    queued.cancel()
    first.cancel()
    for task in (queued, first):
        with pytest.raises(asyncio.CancelledError):
            await task
    async with asyncio.timeout(GUARD):
        assert await executor.run(
            models.Evaluate(expression="'ran' in globals()", timeout=120)
        ) == {"value": False}


async def test_a_cancellation_in_the_turn_its_reply_arrives_keeps_the_session(
    executor: Executor,
) -> None:
    """The reply and the cancellation in one turn of the loop (a client that cancels
    and interrupts at once: the MCP server does both): the request is over. Unfixed,
    the cancelled request waited for a second reply, killed the worker after the
    grace and lost the session's state (a flaky MCP cancellation test's cause)."""
    await executor.run(models.Execute(code="kept = 'state kept'"))
    task = await _start(
        executor, "import time\nprint('ready', flush=True)\ntime.sleep(120)"
    )
    worker = executor._sessions[models.DEFAULT_SESSION].worker
    assert worker is not None
    channel = worker._channel
    delivered = channel._on_line

    def then_cancel(line: bytes) -> None:
        # The real reply goes to the request, then the cancellation lands before
        # the request's task wakes up: exactly the race, made certain.
        delivered(line)
        if b'"error"' in line and not task.done():
            task.cancel()

    channel._on_line = then_cancel  # type: ignore[method-assign]
    worker.interrupt()  # the worker replies: KeyboardInterrupt
    with pytest.raises(asyncio.CancelledError):
        await task
    channel._on_line = delivered  # type: ignore[method-assign]
    async with asyncio.timeout(GUARD):
        assert await executor.run(models.Evaluate(expression="kept", timeout=120)) == {
            "value": "state kept"
        }
