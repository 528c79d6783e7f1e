"""WorkerProcess against hostile code: its group killed and reaped, OOM and process-limit
deaths explained from the cgroup, the server made undumpable.

The scenarios run in a child interpreter that is a child subreaper (PR_SET_CHILD_SUBREAPER):
like a backend server that is PID 1 of its container, it inherits the orphans of its
workers, so zombies it fails to reap show up. The cgroup is faked (a class with the
counters ``ContainerLimits`` has), so the scenarios run on any Linux machine.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from beephost_core._process import process_group

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process groups and prctl of Linux"
)

PRELUDE = """\
import asyncio, ctypes, json, os, signal, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: like PID 1
from beephost_core import _process
from beephost_core._process import WorkerProcess, monotonic_deadline, process_group
from beephost_core.config import ExecutorConfig
from beephost_protocol.errors import BeepHostError

class FakeLimits:
    def __init__(self):
        self.oom = 0
        self.refused = 0
    def oom_kills(self): return self.oom
    def recent_oom_kills(self): return self.oom
    def pids_refused(self): return self.refused
    def memory_limit(self): return 256 << 20
    def pids_limit(self): return 8

limits = FakeLimits()
_process.container_limits = lambda: limits

def zombies():
    found = []
    for pid in os.listdir("/proc"):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            found.append(int(pid))
    return found

async def run(worker, code, timeout=10):
    try:
        result = await worker.request(
            "exec", {"code": code}, deadline=monotonic_deadline(timeout), grace=1
        )
        return {"result": result}
    except BeepHostError as exc:
        return {"error": type(exc).__name__, "message": exc.message, "data": exc.data}

FORK_SLEEPERS = (
    "import os, time\\n"
    "for _ in range(4):\\n"
    "    if os.fork() == 0:\\n"
    "        time.sleep(60)\\n"
    "        os._exit(0)\\n"
)
"""


def scenario(env_python: str, body: str) -> dict[str, Any]:
    """Run ``body`` (the inside of ``async def main(worker)``) and return what it printed."""
    script = (
        PRELUDE
        + "async def main(worker):\n"
        + textwrap.indent(textwrap.dedent(body), "    ")
        + "\nasync def start():\n"
        + "    worker = await WorkerProcess.spawn(ExecutorConfig(python=sys.argv[1]))\n"
        + "    out = await main(worker)\n"
        + "    await worker.kill()\n"
        + "    out['zombies'] = zombies()\n"
        + "    print(json.dumps(out))\n"
        + "asyncio.run(start())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, env_python],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_killing_a_session_kills_and_reaps_what_it_forked(env_python: str) -> None:
    out = scenario(
        env_python,
        """
        await run(worker, FORK_SLEEPERS)
        before = len(process_group(worker.pid))
        await worker.kill()
        return {"before": before, "after": process_group(worker.pid)}
        """,
    )
    assert out["before"] == 5  # the worker and its 4 children
    assert out["after"] == []
    assert out["zombies"] == [], "the orphans' zombies were reaped"


def test_a_worker_that_exits_leaves_no_orphans_behind(env_python: str) -> None:
    out = scenario(
        env_python,
        """
        reply = await run(worker, FORK_SLEEPERS + "os._exit(3)\\n")
        await worker.kill()  # what the executor does with a dead worker
        return {"reply": reply, "after": process_group(worker.pid)}
        """,
    )
    assert out["reply"]["error"] == "SessionLost"
    assert out["reply"]["data"]["reason"] == "worker exited with status 3"
    assert "reason_code" not in out["reply"]["data"]
    assert out["after"] == [], "the children outlived their worker"
    assert out["zombies"] == []


def test_an_oom_kill_is_reported_as_out_of_memory(env_python: str) -> None:
    # The OOM killer's SIGKILL, as the cgroup counts it.
    out = scenario(
        env_python,
        """
        code = "import os, signal, time\\ntime.sleep(0.3)\\nos.kill(os.getpid(), 9)"
        task = asyncio.ensure_future(run(worker, code))
        await asyncio.sleep(0.1)
        limits.oom = 1  # counted while the request ran
        return {"reply": await task}
        """,
    )
    data = out["reply"]["data"]
    assert out["reply"]["error"] == "SessionLost"
    assert data["reason_code"] == "out_of_memory"
    assert data["reason"] == "out of memory (the container's memory limit, 256 MiB)"
    assert data["exit_code"] == -9
    assert "out of memory" in out["reply"]["message"]


def test_a_sigkill_the_cgroup_did_not_count_is_not_called_oom(env_python: str) -> None:
    out = scenario(
        env_python,
        """
        code = "import os, signal\\nos.kill(os.getpid(), signal.SIGKILL)"
        return {"reply": await run(worker, code)}
        """,
    )
    data = out["reply"]["data"]
    assert data["reason"] == "worker killed by SIGKILL"
    assert "reason_code" not in data


def test_a_session_that_exhausts_the_process_limit_is_killed(env_python: str) -> None:
    # 5 processes of a limit of 8 (at least half), and a fork refused meanwhile.
    out = scenario(
        env_python,
        """
        task = asyncio.ensure_future(
            run(worker, FORK_SLEEPERS + "time.sleep(0.3)\\n")
        )
        await asyncio.sleep(0.1)
        limits.refused = 1
        return {"reply": await task, "after": process_group(worker.pid)}
        """,
    )
    data = out["reply"]["data"]
    assert out["reply"]["error"] == "SessionLost"
    assert data["reason_code"] == "process_limit"
    assert "started 4 processes" in data["reason"]
    assert "limit is 8" in data["reason"]
    assert out["after"] == []
    assert out["zombies"] == []


def test_a_fork_refused_between_requests_is_looked_into_after_the_next(
    env_python: str,
) -> None:
    # The count is read once per request, against the last one this worker saw: the
    # sleepers' group (5 of 8) is found out by the request after the refusal.
    out = scenario(
        env_python,
        """
        first = await run(worker, FORK_SLEEPERS)
        limits.refused = 1
        return {"first": first, "reply": await run(worker, "pass")}
        """,
    )
    assert "result" in out["first"], out["first"]
    assert out["reply"]["error"] == "SessionLost"
    assert out["reply"]["data"]["reason_code"] == "process_limit"
    assert out["zombies"] == []


def test_a_refused_fork_elsewhere_spares_a_small_session(env_python: str) -> None:
    # Someone else hit the limit: a session with one child is not the fork bomb.
    out = scenario(
        env_python,
        """
        code = (
            "import os, time\\n"
            "if os.fork() == 0:\\n"
            "    time.sleep(60)\\n"
            "    os._exit(0)\\n"
            "time.sleep(0.3)\\n"
        )
        task = asyncio.ensure_future(run(worker, code))
        await asyncio.sleep(0.1)
        limits.refused = 1
        return {"reply": await task, "alive": worker.alive}
        """,
    )
    assert "result" in out["reply"], out["reply"]
    assert out["alive"] is True
    assert out["zombies"] == []


def test_killing_is_bounded_when_an_escaped_process_holds_stderr(
    env_python: str,
) -> None:
    # A new session (setsid) leaves the worker's group, so the group's SIGKILL misses
    # it, and it holds the worker's stderr pipe: close() must not wait for it.
    out = scenario(
        env_python,
        """
        code = (
            "import subprocess\\n"
            "escaped = subprocess.Popen(['sleep', '30'], start_new_session=True).pid"
        )
        await run(worker, code)
        escaped = (await worker.request(
            "eval", {"expression": "escaped", "locals": {}},
            deadline=monotonic_deadline(5), grace=1,
        ))["value"]
        started = asyncio.get_running_loop().time()
        await worker.kill()
        return {
            "seconds": asyncio.get_running_loop().time() - started,
            "escaped": escaped,
        }
        """,
    )
    try:
        assert out["seconds"] < 3.0, out
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(out["escaped"], signal.SIGKILL)  # not in the group: ours to end


def test_the_server_becomes_undumpable_before_user_code_runs(env_python: str) -> None:
    out = scenario(
        env_python,
        """
        get_dumpable = "import ctypes\\nctypes.CDLL(None).prctl(3, 0, 0, 0, 0)"
        reply = await run(worker, get_dumpable)
        return {
            "server": ctypes.CDLL(None).prctl(3, 0, 0, 0, 0),  # PR_GET_DUMPABLE
            "worker": reply["result"]["value"],
            "oom_score_adj": open(f"/proc/{worker.pid}/oom_score_adj").read().strip(),
        }
        """,
    )
    assert out["server"] == 0, "the server is undumpable"
    assert out["worker"] == 1, "exec made the worker dumpable again"
    assert out["oom_score_adj"] == "1000", "the worker is the OOM killer's first choice"


def test_process_group_from_a_fake_proc(tmp_path: Path) -> None:
    stats = {
        "1": "1 (server) S 0 1 1 0",
        "7": "7 (python3) S 1 7 7 0",
        "8": "8 (a (weird) name) Z 7 7 7 0",
        "9": "9 (python3) S 1 9 9 0",
    }
    for pid, stat in stats.items():
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "stat").write_text(stat)
    (tmp_path / "self").mkdir()
    (tmp_path / "10").mkdir()  # gone meanwhile: no stat
    assert sorted(process_group(7, tmp_path)) == [7, 8]
    assert process_group(42, tmp_path) == []
