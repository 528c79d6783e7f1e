"""The execution core against real worker processes: isolation, deadlines, crashes, limits."""

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from beephost_core import Executor, ExecutorConfig
from beephost_protocol import models
from beephost_protocol.errors import (
    ExecutionFailed,
    ExecutionTimeout,
    InternalError,
    Interrupted,
    NotFound,
    QuotaExceeded,
    SessionLost,
    TooLarge,
    Unavailable,
)
from tests.integration.core.conftest import MakeExecutor

pytestmark = pytest.mark.anyio


async def test_user_code_sees_the_environment_not_the_server(
    executor: Executor,
) -> None:
    # pydantic is a server dependency; the empty environment must not see it.
    with pytest.raises(ExecutionFailed) as info:
        await executor.run(models.Execute(code="import pydantic"))
    assert info.value.remote_type == "ModuleNotFoundError"
    result = await executor.run(models.Evaluate(expression="__import__('sys').prefix"))
    assert "bh-env-" in result["value"]


async def test_server_secrets_do_not_reach_user_code(
    make_executor: MakeExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEEPHOST_PIPE_BACKEND_TOKEN", "s3cret")
    executor = await make_executor(env={"PATH": "/usr/bin:/bin"})
    result = await executor.run(
        models.Evaluate(expression="dict(__import__('os').environ)")
    )
    assert "BEEPHOST_PIPE_BACKEND_TOKEN" not in result["value"]


async def test_extra_env_reaches_user_code_but_server_variables_do_not(
    make_executor: MakeExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from beephost_core.settings import BackendSettings

    monkeypatch.setenv("BEEPHOST_PIPE_BACKEND_TOKEN", "s3cret")
    config = BackendSettings(
        worker_env={"X": "extra", "BEEPHOST_CONTROLLER_TOKEN": "scoped"}
    ).executor_config()
    executor = await make_executor(extra_env=config.extra_env)
    await executor.run(models.Execute(code="import os"))
    seen = await executor.run(
        models.Evaluate(
            expression="[os.environ.get(k) for k in "
            "('X', 'BEEPHOST_CONTROLLER_TOKEN', 'BEEPHOST_PIPE_BACKEND_TOKEN')]"
        )
    )
    assert seen["value"] == ["extra", "scoped", None]
    # Every worker gets it: a new session's worker too.
    opened = await executor.run(models.SessionOpen())
    other = await executor.run(
        models.Evaluate(
            expression="__import__('os').environ.get('X')", session=opened["session"]
        )
    )
    assert other["value"] == "extra"


async def test_default_worker_env_drops_the_server_venv_from_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from beephost_core.config import default_worker_env

    server_bin = os.path.dirname(sys.executable)
    monkeypatch.setenv("PATH", os.pathsep.join([server_bin, "/usr/bin", "/bin"]))
    assert default_worker_env()["PATH"] == os.pathsep.join(["/usr/bin", "/bin"])


async def test_default_worker_env_drops_server_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from beephost_core.config import default_worker_env

    monkeypatch.setenv("BEEPHOST_PIPE_BACKEND_TOKEN", "s3cret")
    assert "BEEPHOST_PIPE_BACKEND_TOKEN" not in default_worker_env()


async def test_sessions_have_separate_namespaces(executor: Executor) -> None:
    opened = await executor.run(models.SessionOpen())
    other = opened["session"]
    await executor.run(models.Execute(code="x = 'default'"))
    await executor.run(models.Execute(code="x = 'other'", session=other))
    assert (await executor.run(models.Evaluate(expression="x")))["value"] == "default"
    assert (await executor.run(models.Evaluate(expression="x", session=other)))[
        "value"
    ] == "other"
    info = await executor.run(models.SessionInfo(session=other))
    default_info = await executor.run(models.SessionInfo())
    assert info["pid"] != default_info["pid"]  # its own worker process
    assert info["python_version"].count(".") == 2
    assert info["environment"] == "local"
    assert (await executor.run(models.SessionList()))["sessions"] == ["default", other]
    await executor.run(models.SessionClose(session=other))
    with pytest.raises(NotFound):
        await executor.run(models.Evaluate(expression="1", session=other))


async def test_timeout_interrupts_and_keeps_state(executor: Executor) -> None:
    await executor.run(models.Execute(code="kept = 42"))
    started = time.monotonic()
    with pytest.raises(ExecutionTimeout) as info:
        await executor.run(models.Execute(code="while True: pass", timeout=1.0))
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.0 + 0.5 + 1.0
    assert info.value.data["state_lost"] is False
    assert (await executor.run(models.Evaluate(expression="kept")))["value"] == 42


async def test_timeout_kills_a_worker_that_ignores_interrupts(
    executor: Executor,
) -> None:
    await executor.run(models.Execute(code="kept = 42"))
    code = (
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
    )
    started = time.monotonic()
    with pytest.raises(ExecutionTimeout) as info:
        await executor.run(models.Execute(code=code, timeout=0.5))
    assert time.monotonic() - started < 0.5 + 0.5 + 1.0
    assert info.value.data == {"state_lost": True}
    with pytest.raises(
        ExecutionFailed, match="NameError"
    ):  # a fresh worker, fresh namespace
        await executor.run(models.Evaluate(expression="kept"))


async def test_a_request_queued_behind_a_killed_worker_hears_the_session_is_lost(
    executor: Executor,
) -> None:
    opened = await executor.run(models.SessionOpen())
    session = opened["session"]
    code = (
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
    )
    stuck = asyncio.ensure_future(
        executor.run(models.Execute(code=code, timeout=0.5, session=session))
    )
    await asyncio.sleep(0.1)  # the first request holds the session
    with pytest.raises(SessionLost):
        await executor.run(
            models.Evaluate(expression="1 + 1", timeout=10, session=session)
        )
    with pytest.raises(ExecutionTimeout):
        await stuck
    with pytest.raises(SessionLost):  # and stays lost, never silently fresh
        await executor.run(models.Evaluate(expression="1", session=session))


async def test_other_sessions_are_served_during_a_long_request(
    executor: Executor,
) -> None:
    other = (await executor.run(models.SessionOpen()))["session"]
    slow = asyncio.create_task(
        executor.run(models.Execute(code="while True: pass", timeout=2))
    )
    await asyncio.sleep(0.2)
    started = time.monotonic()
    assert (await executor.run(models.Evaluate(expression="6*7", session=other)))[
        "value"
    ] == 42
    assert time.monotonic() - started < 1.0
    with pytest.raises(ExecutionTimeout):
        await slow


async def test_interrupt_stops_running_code(executor: Executor) -> None:
    running = asyncio.create_task(
        executor.run(models.Execute(code="import time\ntime.sleep(30)"))
    )
    await asyncio.sleep(0.3)
    assert (await executor.run(models.Interrupt()))["interrupted"] is True
    with pytest.raises(Interrupted):
        await running
    assert (await executor.run(models.Interrupt()))[
        "interrupted"
    ] is False  # nothing runs


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("import os; os._exit(3)", "exited with status 3"),
        ("import ctypes; ctypes.string_at(0)", "SIGSEGV"),
    ],
    ids=["os_exit", "segfault"],
)
async def test_a_dying_worker_loses_its_session(
    executor: Executor, code: str, reason: str
) -> None:
    other = (await executor.run(models.SessionOpen()))["session"]
    with pytest.raises(SessionLost) as info:
        await executor.run(models.Execute(code=code, session=other))
    assert reason in info.value.message
    with pytest.raises(SessionLost) as again:  # the lost session stays lost, truthfully
        await executor.run(models.Evaluate(expression="1", session=other))
    assert again.value.data["session"] == other
    assert info.value.data["session"] == other
    assert (await executor.run(models.SessionClose(session=other))) == {"closed": True}
    with pytest.raises(NotFound):  # closed: forgotten
        await executor.run(models.Evaluate(expression="1", session=other))
    fresh = (await executor.run(models.SessionOpen()))["session"]
    assert (await executor.run(models.Evaluate(expression="1+1", session=fresh)))[
        "value"
    ] == 2
    # The default session survives its worker's death with a fresh worker.
    with pytest.raises(SessionLost):
        await executor.run(models.Execute(code=code))
    assert (await executor.run(models.Evaluate(expression="2+2")))["value"] == 4
    restarts = executor.metrics.registry.get_sample_value(
        "beephost_worker_restarts_total", {"reason": "lost"}
    )
    assert restarts == 2


async def test_a_corrupted_channel_is_an_internal_error(executor: Executor) -> None:
    code = "import os, sys\nos.write(int(sys.argv[1]), b'garbage\\n')\nimport time; time.sleep(1)"
    with pytest.raises(InternalError) as info:
        await executor.run(models.Execute(code=code))
    assert info.value.data == {"state_lost": True}
    assert (await executor.run(models.Evaluate(expression="1")))["value"] == 1


async def test_output_is_truncated_not_buffered(make_executor: MakeExecutor) -> None:
    executor = await make_executor(max_output_bytes=1000)
    result = await executor.run(
        models.Execute(
            code="print('x' * 20_000_000)\nprint('e', file=__import__('sys').stderr)"
        )
    )
    assert result["stdout"].startswith("x" * 1000)
    assert result["stdout_dropped"] == 20_000_001 - 1000
    assert "bytes truncated]" in result["stdout"]
    assert len(result["stdout"]) < 1100
    assert result["stderr"] == "e\n"


async def test_result_size_is_limited(make_executor: MakeExecutor) -> None:
    executor = await make_executor(max_result_bytes=100_000)
    with pytest.raises(TooLarge) as info:
        await executor.run(models.Evaluate(expression="'x' * 200_000"))
    assert info.value.data["limit"] == 100_000
    assert (await executor.run(models.Evaluate(expression="len('x' * 200_000)")))[
        "value"
    ] == 200_000


async def test_session_and_handle_quotas(make_executor: MakeExecutor) -> None:
    executor = await make_executor(max_sessions=2, max_handles=2)
    await executor.run(models.SessionOpen())
    with pytest.raises(QuotaExceeded):
        await executor.run(models.SessionOpen())
    for _ in range(2):
        await executor.run(models.ObjectCreate(target="object"))
    with pytest.raises(QuotaExceeded):
        await executor.run(models.ObjectCreate(target="object"))
    listed = (await executor.run(models.ObjectList()))["handles"]
    released = await executor.run(
        models.ObjectRelease(handles=[h["id"] for h in listed])
    )
    assert released == {"released": 2}
    assert executor.metrics.registry.get_sample_value("beephost_handles") == 0
    await executor.run(models.ObjectCreate(target="object"))


async def test_idle_sessions_expire(make_executor: MakeExecutor) -> None:
    executor = await make_executor(session_ttl=0.3)
    session = (await executor.run(models.SessionOpen()))["session"]
    await asyncio.sleep(1.0)
    with pytest.raises(SessionLost, match=r"expired after 0\.3s idle"):
        await executor.run(models.Evaluate(expression="1", session=session))
    assert (await executor.run(models.SessionClose(session=session)))["closed"] is True
    assert (await executor.run(models.Evaluate(expression="1")))[
        "value"
    ] == 1  # default stays


async def test_objects_round_trip_through_handles(executor: Executor) -> None:
    created = await executor.run(
        models.ObjectCreate(target="collections.Counter", args=["abca"])
    )
    counter = created["value"]["$handle"]
    assert counter["type"] == "collections.Counter"
    common = await executor.run(
        models.ObjectCall(handle=counter["id"], method="most_common", args=[1])
    )
    assert common["value"] == [{"$tuple": ["a", 2]}]
    await executor.run(
        models.ObjectSetAttr(handle=counter["id"], name="tag", value="t")
    )
    assert (await executor.run(models.ObjectGetAttr(handle=counter["id"], name="tag")))[
        "value"
    ] == "t"
    # A handle passed back as an argument resolves to the same object.
    same = await executor.run(
        models.Evaluate(
            expression="c is d",
            locals={"c": {"$handle": counter}, "d": created["value"]},
        )
    )
    assert same["value"] is True
    with pytest.raises(ExecutionFailed, match="AttributeError"):
        await executor.run(models.ObjectGetAttr(handle=counter["id"], name="missing"))
    with pytest.raises(NotFound):
        await executor.run(models.ObjectCall(handle="h-unknown", method="x"))


async def test_streamed_exec_delivers_output_as_produced(executor: Executor) -> None:
    events: list[tuple[float, str, str]] = []
    code = "import time, sys\nprint('a', flush=True)\ntime.sleep(0.5)\nprint('b', file=sys.stderr)\n'done'"
    started = time.monotonic()
    result = await executor.run(
        models.Execute(code=code, stream=True),
        on_event=lambda stream, data: events.append(
            (time.monotonic() - started, stream, data)
        ),
    )
    assert result["value"] == "done"
    assert [(s, d) for _, s, d in events] == [("stdout", "a\n"), ("stderr", "b\n")]
    assert events[0][0] < 0.4  # 'a' arrived before the sleep ended


@pytest.mark.parametrize("soon", [False, True], ids=["start", "start_soon-then-start"])
async def test_missing_interpreter_is_unavailable(soon: bool) -> None:
    executor = Executor(ExecutorConfig(python="/nonexistent/python"))
    if soon:
        executor.start_soon()  # its failure reaches start
    with pytest.raises(Unavailable, match="cannot start worker"):
        await executor.start()
    await executor.aclose()


async def test_start_soon_boots_the_default_worker_that_start_then_joins(
    env_python: str,
) -> None:
    executor = Executor(ExecutorConfig(python=env_python))
    try:
        executor.start_soon()
        executor.start_soon()  # a second call starts nothing more
        await asyncio.sleep(0)
        assert not executor.ready  # under way, not done
        await executor.start()
        await executor.start()  # joins the same start: still one default worker
        assert executor.ready
        pid = (await executor.run(models.SessionInfo()))["pid"]
        assert [s.worker.pid for s in executor._sessions.values() if s.worker] == [pid]
    finally:
        await executor.aclose()


async def test_closing_during_start_soon_waits_for_the_worker_and_kills_it(
    env_python: str,
) -> None:
    executor = Executor(ExecutorConfig(python=env_python))
    executor.start_soon()
    await asyncio.sleep(0)
    await executor.aclose()  # the spawn under way ended, and nothing is left running
    assert executor._starting is not None
    assert executor._starting.done()
    assert executor._reaper is None or executor._reaper.cancelled()
    assert not executor._sessions


async def test_closing_ends_a_long_request_and_the_release_queued_behind_it(
    make_executor: MakeExecutor,
) -> None:
    # A connection's handles are released in the background when it goes; behind a
    # long request that release waits for the session. Closing must not wait with it
    # (it used to, for up to spawn_timeout, here 600 s): it kills the workers first.
    executor = await make_executor(spawn_timeout=600.0)
    created = await executor.run(
        models.ObjectCreate(target="collections.Counter"), owner="conn"
    )
    assert created["value"]["$handle"]["type"] == "collections.Counter"
    long = asyncio.create_task(
        executor.run(models.Evaluate(expression="__import__('time').sleep(600)"))
    )
    await asyncio.sleep(0.3)  # the sleep holds the default session now
    executor.release_owned("conn")
    released = list(executor._tasks)
    assert released, "the release runs in the background"
    await asyncio.wait_for(executor.aclose(), timeout=60)  # a hang guard, not a timing
    with pytest.raises(SessionLost):
        await long
    assert all(task.done() for task in released)
    assert not executor._sessions
    assert not executor._spares


async def test_default_worker_dying_idle_is_replaced_and_reported_once(
    executor: Executor,
) -> None:
    pid = (await executor.run(models.SessionInfo()))["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # replaced in the background: ready again
        default = executor._sessions["default"]
        if default.worker is not None and default.worker.pid != pid and executor.ready:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the default worker was not replaced")
    with pytest.raises(SessionLost, match="died while idle") as info:
        await executor.run(models.Evaluate(expression="1"))
    assert "SIGKILL" in info.value.data["reason"]
    assert (await executor.run(models.Evaluate(expression="1")))["value"] == 1
    assert (await executor.run(models.SessionInfo()))["pid"] != pid


async def test_a_child_forked_by_user_code_never_answers_for_the_session(
    executor: Executor,
) -> None:
    # The child returns from fork() into the same request: it must neither reply to it
    # nor take the session's next requests (it held a copy of the channel).
    result = await executor.run(
        models.Execute(
            code="import os, time\n"
            "worker = os.getpid()\n"
            "child = os.fork()\n"
            "if child == 0:\n"
            "    time.sleep(0.3)  # outlive the parent's reply: a copy would race it\n"
            "else:\n"
            "    os.waitpid(child, 0)\n"
            "child"
        )
    )
    assert result["value"] > 0  # the parent's answer, with the child's pid
    worker = (await executor.run(models.Evaluate(expression="worker")))["value"]
    for _ in range(20):
        seen = await executor.run(models.Evaluate(expression="os.getpid()"))
        assert seen["value"] == worker
    started = await executor.run(
        models.Execute(code="grandchild = os.fork()\nif grandchild == 0: time.sleep(1)")
    )
    assert started["has_value"] is False
    assert (await executor.run(models.Evaluate(expression="os.getpid()")))[
        "value"
    ] == worker


async def test_spares_are_kept_once_a_client_opens_sessions(
    make_executor: MakeExecutor,
) -> None:
    # An idle backend only asked to evaluate holds the default session's worker alone:
    # each worker is ~10 MiB of its container's memory limit.
    executor: Executor = await make_executor(prewarm=1)
    await executor.run(models.Evaluate(expression="1 + 1"))
    await asyncio.sleep(0.5)  # room for a refill that must not happen
    assert executor._spares == []
    opened = await executor.run(models.SessionOpen())
    deadline = time.monotonic() + 20
    while len(executor._spares) < 1:
        assert time.monotonic() < deadline, "no spare after the first session.open"
        await asyncio.sleep(0.05)
    spare = executor._spares[0]
    # A spare holds no state: under memory pressure the kernel kills it before any
    # session's worker (the default session's included).
    assert oom_score_adj(spare.pid) == "1000"
    holding = [
        executor._sessions[s].worker
        for s in (opened["session"], models.DEFAULT_SESSION)
    ]
    assert [oom_score_adj(w.pid) for w in holding if w] == ["800", "800"]
    second = await executor.run(models.SessionOpen())  # takes the spare: instant
    assert executor._sessions[second["session"]].worker is spare
    assert oom_score_adj(spare.pid) == "800", "a session's now"
    for session in (opened, second):
        await executor.run(models.SessionClose(session=session["session"]))


def oom_score_adj(pid: int) -> str:
    return Path(f"/proc/{pid}/oom_score_adj").read_text().strip()
