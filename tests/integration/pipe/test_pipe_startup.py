"""A pipe backend listens before its default worker is up: requests wait for it.

The worker's interpreter is a wrapper that sleeps before it runs Python, so the window
between "listening" and "ready" is long enough to send into, on a real server process.
"""

import time
from pathlib import Path

from tests.integration.pipe.support import (
    connect_when_listening,
    spawn_pipe_server,
    start_pipe_server,
    stop_pipe_server,
)

BOOT_DELAY = 1.5  # seconds the wrapper sleeps before the worker's Python starts


def slow_python(directory: Path, python: str, then: str) -> str:
    """An interpreter for workers that sleeps BOOT_DELAY, then runs ``then``."""
    wrapper = directory / "slow-python"
    wrapper.write_text(f"#!/bin/sh\nsleep {BOOT_DELAY}\n{then}\n")
    wrapper.chmod(0o755)
    return str(wrapper)


def test_a_request_sent_while_the_worker_boots_is_answered(
    short_tmp: Path, env_python: str
) -> None:
    python = slow_python(short_tmp, env_python, f'exec {env_python} "$@"')
    server = spawn_pipe_server(short_tmp, python)
    try:
        client = connect_when_listening(server, short_tmp)
        connected = time.monotonic()
        assert client.result("ping") == {"pong": True, "ready": False}
        assert client.result("eval", expression="1+1") == {"value": 2}
        waited = time.monotonic() - connected
        assert client.result("ping") == {"pong": True, "ready": True}
    finally:
        stop_pipe_server(server)
    assert server.process.returncode == 0
    # Connected before the worker could have said hello: the eval waited for it.
    assert waited > BOOT_DELAY / 2, waited


def test_requests_get_unavailable_and_the_process_exits_1_when_no_worker_starts(
    short_tmp: Path, env_python: str
) -> None:
    python = slow_python(short_tmp, env_python, "exit 3")
    server = spawn_pipe_server(short_tmp, python)
    try:
        client = connect_when_listening(server, short_tmp)
        error = client.error("eval", expression="1+1")
        assert error["code"] == "unavailable", error
        assert server.process.wait(timeout=30) == 1
    finally:
        stop_pipe_server(server)
    log = (short_tmp / "server.log").read_text()
    assert "cannot start the executor" in log, log
    assert not server.socket_path.exists()  # unlinked on the way out


def test_a_backend_told_its_workspace_serves_with_the_worker_it_started_first(
    short_tmp: Path, env_python: str
) -> None:
    # As a controller starts it: the workspace is named, so the default session's
    # worker starts before the settings are validated, and serves.
    workspace = short_tmp / "workspace"
    workspace.mkdir()
    server = start_pipe_server(short_tmp, env_python, workspace_dir=workspace)
    try:
        client = server.connect()
        pid = client.result("eval", expression="__import__('os').getpid()")["value"]
        cwd = client.result("eval", expression="__import__('os').getcwd()")["value"]
    finally:
        stop_pipe_server(server)
    assert cwd == str(workspace)
    log = (short_tmp / "server.log").read_text()
    assert f"the default session's worker (pid {pid}) was started early" in log, log
