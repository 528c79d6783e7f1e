"""The default session's worker started early (before the settings are validated):
adopted when the settings launch it the same way, replaced otherwise, never leaked."""

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from beephost_core import Executor
from beephost_core.early_worker import EarlyWorker, start_early
from beephost_core.envsettings import EnvConfigDict
from beephost_core.settings import BackendSettings
from beephost_protocol import models

pytestmark = pytest.mark.anyio

PREFIX = "BEEPHOST_EARLY_TEST_"
SHOW = "(__import__('os').getpid(), __import__('os').getcwd(), dict(__import__('os').environ))"


class _Settings(BackendSettings):
    model_config = EnvConfigDict(env_prefix=PREFIX, extra="ignore")


@pytest.fixture
def workspace(tmp_path: Path, env_python: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A backend's variables, as a controller sets them: a workspace, an interpreter."""
    root = tmp_path / "workspace"
    root.mkdir()
    monkeypatch.setenv(f"{PREFIX}WORKSPACE_DIR", str(root))
    monkeypatch.setenv(f"{PREFIX}PYTHON", env_python)
    monkeypatch.setenv(f"{PREFIX}KILL_GRACE", "0.5")
    return root


def _started_early() -> EarlyWorker:
    early = start_early(PREFIX)
    assert early is not None
    return early


async def _shown(executor: Executor) -> tuple[int, str, dict[str, str]]:
    result = await executor.run(models.Evaluate(expression=SHOW))
    pid, cwd, environ = result["value"]["$tuple"]
    return pid, cwd, environ


async def test_the_default_session_runs_in_the_worker_started_early(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"{PREFIX}WORKER_ENV", json.dumps({"GREETING": "hello"}))
    monkeypatch.setenv(f"{PREFIX}MAX_OUTPUT_BYTES", "10")
    descriptors = _open_descriptors()
    early = _started_early()
    executor = Executor(_Settings().executor_config(), early=early)
    try:
        await executor.start()
        pid, cwd, environ = await _shown(executor)
        assert pid == early.pid
        assert cwd == str(workspace)
        assert environ["GREETING"] == "hello"
        assert environ["HOME"] == str(workspace)
        # Its limits came over its socket, after it started.
        printed = await executor.run(models.Execute(code="print('x' * 100)"))
        assert printed["stdout_dropped"] == 91
    finally:
        await executor.aclose()
    assert early.popen.returncode is not None
    # Its socket and the pipe of its stderr were closed, each once, by their owner.
    assert _open_descriptors() == descriptors


async def test_a_worker_started_for_other_settings_is_replaced(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"{PREFIX}WORKER_ENV", json.dumps({"GREETING": "early"}))
    early = _started_early()
    monkeypatch.setenv(f"{PREFIX}WORKER_ENV", json.dumps({"GREETING": "validated"}))
    executor = Executor(_Settings().executor_config(), early=early)
    try:
        await executor.start()
        assert early.popen.returncode == -signal.SIGKILL
        pid, _, environ = await _shown(executor)
        assert pid != early.pid
        assert environ["GREETING"] == "validated"
    finally:
        await executor.aclose()


async def test_an_early_worker_that_died_is_replaced(workspace: Path) -> None:
    early = _started_early()
    os.kill(early.pid, signal.SIGKILL)
    early.popen.wait(timeout=10)
    executor = Executor(_Settings().executor_config(), early=early)
    try:
        await executor.start()
        pid, cwd, _ = await _shown(executor)
        assert pid != early.pid
        assert cwd == str(workspace)
    finally:
        await executor.aclose()


async def test_an_executor_closed_without_starting_reaps_its_early_worker(
    workspace: Path,
) -> None:
    early = _started_early()
    executor = Executor(_Settings().executor_config(), early=early)
    await executor.aclose()
    assert early.popen.returncode == -signal.SIGKILL


def test_an_early_worker_whose_server_is_gone_exits(workspace: Path) -> None:
    early = _started_early()
    early.take_socket().close()  # as the server's exit closes it
    assert early.popen.wait(timeout=30) == 0
    stderr = early.take_stderr()
    try:
        assert os.read(stderr, 4096) == b""  # its end: nothing written
    finally:
        os.close(stderr)


def test_a_server_that_stops_at_its_settings_leaves_no_worker(
    workspace: Path, tmp_path: Path
) -> None:
    # What a backend's main does when its settings are refused: the early worker was
    # started, the process exits; the worker must follow it, not run on.
    code = (
        "from beephost_core.early_worker import start_early\n"
        f"early = start_early({PREFIX!r})\n"
        "print(early.pid, flush=True)\n"
        "raise SystemExit('bad settings')\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 1, ran.stderr
    pid = int(ran.stdout)
    _wait_gone(pid)


def _open_descriptors() -> set[str]:
    """This process's open sockets, pipes and pidfds (files opened once for the
    process's life, its cgroup's, are not an early worker's)."""
    kinds = ("socket:", "pipe:", "anon_inode:[pidfd]")
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own descriptor, closed since
        if target.startswith(kinds):
            found.add(f"{fd} {target}")
    return found


def _wait_gone(pid: int) -> None:
    """Until ``pid`` is gone or a zombie (its parent is gone; init reaps it)."""
    for _ in range(300):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            return
        if state == "Z":
            return
        time.sleep(0.1)
    raise AssertionError(f"the early worker {pid} outlived its server")


def test_on_uvloop_the_stderr_pipe_is_closed_once(workspace: Path) -> None:
    # As the servers run: uvloop's connect_read_pipe closes a pipe twice (libuv, then
    # the file object: uvloop issue 763); the second close takes whatever descriptor
    # got its number meanwhile.
    import uvloop

    async def adopt_and_close() -> None:
        executor = Executor(_Settings().executor_config(), early=_started_early())
        await executor.start()
        await executor.run(models.Evaluate(expression="1+1"))
        await executor.aclose()

    uvloop.run(adopt_and_close())
    read_end, write_end = os.pipe()  # the lowest free numbers: the pipe's, if closed
    try:
        gc.collect()  # what holds a descriptor and is garbage closes it now
        os.fstat(read_end)
        os.fstat(write_end)
    finally:
        os.close(read_end)
        os.close(write_end)
