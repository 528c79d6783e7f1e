"""The worker survives whatever user code raises or returns (issue 11), against real workers.

Hostile exceptions and values, huge integers, handles of failed requests, a
``KeyboardInterrupt`` raised by the code itself, SyntaxError tracebacks, and a SIGINT
that Python's main thread would only see after a blocking call returns.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest

from beephost_core import Executor
from beephost_protocol import models
from beephost_protocol.errors import (
    BeepHostError,
    ExecutionFailed,
    Interrupted,
    QuotaExceeded,
    TooLarge,
)
from tests.integration.core.conftest import MakeExecutor

pytestmark = pytest.mark.anyio


async def _pid(executor: Executor) -> int:
    info = await executor.run(models.SessionInfo())
    return int(info["pid"])


@contextlib.asynccontextmanager
async def _same_worker_and_state(executor: Executor) -> AsyncIterator[None]:
    """The block must leave the default session's worker process and its names."""
    await executor.run(models.Execute(code="kept = 'state kept'"))
    pid = await _pid(executor)
    yield
    assert await executor.run(models.Evaluate(expression="kept")) == {
        "value": "state kept"
    }
    assert await _pid(executor) == pid


# Code that raises something whose formatting fails. Each must end in execution_failed.
HOSTILE_RAISES = {
    "str raises": "class E(Exception):\n    def __str__(self): raise RuntimeError('s')\n"
    "raise E()",
    "str and repr raise": "class E(Exception):\n"
    "    def __str__(self): raise RuntimeError('s')\n"
    "    def __repr__(self): raise RuntimeError('r')\nraise E(1)",
    "str returns a non-str": "class E(Exception):\n    def __str__(self): return 42\n"
    "raise E()",
    "str raises SystemExit": "class E(Exception):\n    def __str__(self): raise SystemExit(3)\n"
    "raise E()",
    "an arg's repr raises": "class A:\n    def __repr__(self): raise RuntimeError('r')\n"
    "raise ValueError(A())",
    "an arg's repr raises SystemExit": "class A:\n"
    "    def __repr__(self): raise SystemExit(1)\nraise ValueError(A())",
    "an arg's repr returns a non-str": "class A:\n    def __repr__(self): return None\n"
    "raise ValueError(A())",
    "args raises": "class E(Exception):\n    @property\n"
    "    def args(self): raise RuntimeError('a')\nraise E()",
    "__class__ raises": "class E(Exception):\n    @property\n"
    "    def __class__(self): raise RuntimeError('c')\nraise E()",
    "qualname raises": "class M(type):\n    @property\n"
    "    def __qualname__(cls): raise RuntimeError('q')\n"
    "class E(Exception, metaclass=M): pass\nraise E()",
    "cause cycle": "a = ValueError('a')\nb = TypeError('b')\na.__cause__ = b\n"
    "b.__cause__ = a\nraise a",
    "context cycle, cause str raises": "class E(Exception):\n"
    "    def __str__(self): raise RuntimeError('s')\n"
    "a = ValueError('a')\nb = E()\na.__context__ = b\nb.__context__ = a\nraise a",
    "notes are not strings": "e = ValueError('x')\ne.__notes__ = [object(), 42]\nraise e",
    "notes raise": "class N(list):\n    def __iter__(self): raise RuntimeError('n')\n"
    "e = ValueError('x')\ne.__notes__ = N()\nraise e",
    "locals with a raising repr": "def f():\n    class L:\n"
    "        def __repr__(self): raise RuntimeError('l')\n"
    "    x = L()\n    raise ValueError('in f')\nf()",
    "SystemExit": "raise SystemExit(5)",
    "a huge int arg": "raise ValueError(10**5000)",
    "str and int subclass args": "import enum\nclass C(enum.IntEnum):\n    A = 1\n"
    "class S(str):\n    def __repr__(self): raise RuntimeError\n"
    "raise ValueError(C.A, S('s'), 1.5)",
    "GeneratorExit": "raise GeneratorExit",
    "BaseException subclass": "class B(BaseException): pass\nraise B('b')",
}

# Code whose value is hostile to encode: success (a handle) or execution_failed.
HOSTILE_RETURNS = {
    "repr raises": "class V:\n    def __repr__(self): raise RuntimeError('r')\nV()",
    "repr raises SystemExit": "class V:\n    def __repr__(self): raise SystemExit(1)\nV()",
    "repr returns a non-str": "class V:\n    def __repr__(self): return 5\nV()",
    "__class__ raises": "class V:\n    @property\n"
    "    def __class__(self): raise RuntimeError('c')\nV()",
    "dict subclass whose iteration raises": "class D(dict):\n"
    "    def __iter__(self): raise RuntimeError('i')\n"
    "    def items(self): raise RuntimeError('i')\nD(a=1)",
    "key with a raising hash and eq": "class K:\n"
    "    def __hash__(self): return 1\n"
    "    def __eq__(self, other): raise RuntimeError('e')\n"
    "    def __repr__(self): raise RuntimeError('r')\n{K(): 1}",
    "exception object": "class E(Exception):\n"
    "    def __str__(self): raise RuntimeError('s')\n"
    "    def __repr__(self): raise RuntimeError('r')\nE()",
}


@pytest.mark.parametrize("code", HOSTILE_RAISES.values(), ids=HOSTILE_RAISES.keys())
async def test_hostile_exceptions_are_execution_failed_and_keep_the_worker(
    executor: Executor, code: str
) -> None:
    async with _same_worker_and_state(executor):
        with pytest.raises(ExecutionFailed) as caught:
            await executor.run(models.Execute(code=code))
    assert isinstance(caught.value.message, str)
    assert caught.value.message
    assert isinstance(caught.value.data["traceback"], str)


@pytest.mark.parametrize("code", HOSTILE_RETURNS.values(), ids=HOSTILE_RETURNS.keys())
async def test_hostile_values_never_end_the_worker(
    executor: Executor, code: str
) -> None:
    async with _same_worker_and_state(executor):
        try:
            result = await executor.run(models.Execute(code=code))
        except ExecutionFailed:
            pass
        else:
            assert "$handle" in json.dumps(result["value"])  # by reference


async def test_a_looping_exception_repr_is_interrupted_at_the_deadline(
    executor: Executor,
) -> None:
    # Formatting the error runs user code too: the deadline interrupts it, state kept.
    await executor.run(models.Execute(code="kept = 1"))
    with pytest.raises(BeepHostError) as caught:
        await executor.run(
            models.Execute(
                code="class A:\n    def __repr__(self):\n        while True: pass\n"
                "raise ValueError(A())",
                timeout=0.5,
            )
        )
    assert caught.value.data.get("state_lost") is not True
    assert await executor.run(models.Evaluate(expression="kept")) == {"value": 1}


# -- integers of any size ---------------------------------------------------------------------


async def test_huge_integers_travel_exactly_both_ways(executor: Executor) -> None:
    result = await executor.run(models.Evaluate(expression="10**5000"))
    assert result["value"] == {"$int": format(10**5000, "x")}
    negative = await executor.run(models.Evaluate(expression="-(10**5000) - 7"))
    assert int(negative["value"]["$int"], 16) == -(10**5000) - 7
    back = await executor.run(
        models.Evaluate(
            expression="n == 10**5000 + 1",
            locals={"n": {"$int": format(10**5000 + 1, "x")}},
        )
    )
    assert back["value"] is True
    # Below the threshold they stay JSON numbers, as before.
    assert (await executor.run(models.Evaluate(expression="10**3999")))[
        "value"
    ] == 10**3999


async def test_a_malformed_int_tag_is_invalid_request(executor: Executor) -> None:
    from beephost_protocol.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        await executor.run(
            models.Evaluate(expression="n", locals={"n": {"$int": "0x1g"}})
        )
    assert (await executor.run(models.Evaluate(expression="1")))["value"] == 1


# -- handles of failed requests ------------------------------------------------------------------


async def test_a_failed_request_leaves_no_handles(make_executor: MakeExecutor) -> None:
    executor = await make_executor(max_handles=5)
    with pytest.raises(QuotaExceeded):
        await executor.run(models.Evaluate(expression="[object() for _ in range(10)]"))
    assert (await executor.run(models.ObjectList()))["handles"] == []
    kept = await executor.run(models.Evaluate(expression="object()"))
    assert "$handle" in kept["value"]  # the quota is free again
    with pytest.raises(ExecutionFailed):
        await executor.run(models.Evaluate(expression="[object(), object(), 1 / 0]"))
    with pytest.raises(ExecutionFailed):
        await executor.run(
            models.Execute(
                code="class W:\n    @property\n    def __class__(self): raise RuntimeError\n"
                "[object(), object(), W()]"
            )
        )
    listed = (await executor.run(models.ObjectList()))["handles"]
    assert [h["id"] for h in listed] == [kept["value"]["$handle"]["id"]]


async def test_a_too_large_reply_leaves_no_handles(make_executor: MakeExecutor) -> None:
    executor = await make_executor(max_result_bytes=4096)
    with pytest.raises(TooLarge):
        await executor.run(models.Evaluate(expression="[object() for _ in range(200)]"))
    assert (await executor.run(models.ObjectList()))["handles"] == []


# -- KeyboardInterrupt and SyntaxError ------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "remote_type"),
    [
        ("raise KeyboardInterrupt('mine')", "KeyboardInterrupt"),
        # A SyntaxError of the code's own compile() keeps its frames too.
        ("compile('1 +', 'mine', 'eval')", "SyntaxError"),
    ],
)
async def test_what_the_code_raises_is_execution_failed_with_its_frames(
    executor: Executor, statement: str, remote_type: str
) -> None:
    with pytest.raises(ExecutionFailed) as caught:
        await executor.run(models.Execute(code=f"def f():\n    {statement}\nf()"))
    assert caught.value.remote_type == remote_type
    assert "in f" in caught.value.data["traceback"]
    assert "mine" in caught.value.message


async def test_a_delivered_interrupt_is_still_interrupted(executor: Executor) -> None:
    task = asyncio.create_task(
        executor.run(models.Execute(code="import time\ntime.sleep(30)"))
    )
    while not (await executor.run(models.Interrupt()))["interrupted"]:  # noqa: ASYNC110 - polls the worker
        await asyncio.sleep(0.01)
    with pytest.raises(Interrupted):
        await task


@pytest.mark.parametrize("command", ["exec", "eval"])
async def test_syntax_error_tracebacks_show_no_worker_frames(
    executor: Executor, command: str
) -> None:
    request: models.Command = (
        models.Execute(code="x = (1,\ny = 2 +")
        if command == "exec"
        else models.Evaluate(expression="1 +")
    )
    with pytest.raises(ExecutionFailed) as caught:
        await executor.run(request)
    assert caught.value.remote_type == "SyntaxError"
    traceback = caught.value.data["traceback"]
    assert "ast.py" not in traceback
    assert "worker.py" not in traceback
    assert "Traceback (most recent call last)" not in traceback
    assert '"<beephost-' in traceback
    assert "SyntaxError" in traceback


# -- a SIGINT the main thread would only see after its blocking call ---------------------------


async def test_an_interrupt_taken_by_another_thread_still_stops_a_blocked_main_thread(
    executor: Executor,
) -> None:
    # The main thread blocks SIGINT, so the kernel hands it to another thread: Python
    # notes it there, but the main thread, blocked in a system call, never checks. It
    # is the state a SIGINT landing just before a blocking call leaves behind, made
    # certain. Without a wake-up, the read never returns: the deadline's SIGINT goes the
    # same way, and the worker is killed (ExecutionTimeout, state lost).
    code = (
        "import os, signal, threading\n"
        "stop = threading.Event()\n"
        "threading.Thread(target=stop.wait, daemon=True).start()\n"
        "never, _keep = os.pipe()\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    os.read(never, 1)\n"
        "finally:\n"
        "    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})\n"
        "    stop.set()\n"
    )
    ready = asyncio.Event()

    def on_event(stream: str, data: str) -> None:
        if "ready" in data:
            ready.set()

    await executor.run(models.Execute(code="kept = 1"))
    task = asyncio.create_task(
        executor.run(models.Execute(code=code, stream=True, timeout=5), on_event)
    )
    await ready.wait()
    assert (await executor.run(models.Interrupt()))["interrupted"]
    with pytest.raises(Interrupted):
        await task
    assert (await executor.run(models.Evaluate(expression="kept")))["value"] == 1


async def test_the_wake_up_survives_user_code_replacing_the_wakeup_fd(
    executor: Executor,
) -> None:
    # asyncio's signal handlers replace the process's wakeup fd; the next request
    # restores the worker's, so the case above still holds.
    await executor.run(models.Execute(code="import signal\nsignal.set_wakeup_fd(-1)"))
    await test_an_interrupt_taken_by_another_thread_still_stops_a_blocked_main_thread(
        executor
    )


async def test_exception_args_are_described_without_user_code(
    executor: Executor,
) -> None:
    code = (
        "import enum\nclass C(enum.IntEnum):\n    A = 1\n"
        "class S(str):\n    def __repr__(self): raise RuntimeError\n"
        "raise ValueError(C.A, S('s'), 1.5, 10**5000, object)"
    )
    with pytest.raises(ExecutionFailed) as caught:
        await executor.run(models.Execute(code=code))
    assert caught.value.data["args"] == [
        1,
        "s",
        1.5,
        f"<int of {(10**5000).bit_length()} bits>",
        "<class 'object'>",
    ]
