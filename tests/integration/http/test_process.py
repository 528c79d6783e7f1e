"""The real entry point: `python -m beephost_http_backend`, its logs, healthcheck and drain."""

import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.http.conftest import TOKEN, StartProcess
from tests.integration.http.support import Client, Reply, StreamReply
from tests.integration.processes import run_module
from tests.ports import free_port


def _healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    return run_module(
        "beephost_http_backend", "healthcheck", BEEPHOST_HTTP_BACKEND_PORT=str(port)
    )


def test_serve_logs_one_json_line_per_request(start_process: StartProcess) -> None:
    server = start_process(token=TOKEN)
    client = Client(server.port, TOKEN)
    assert client.eval("1+1") == 2
    assert client.post("/api/eval", {"expression": "1/0"}).status == 422
    # Sent from loopback, where user code runs too: the log keeps the TCP peer.
    forged = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    assert client.post("/api/eval", {"expression": "2"}, headers=forged).status == 200
    client.close()
    checked = _healthcheck(server.port)
    assert (checked.returncode, checked.stdout.strip()) == (0, "ready")
    server.terminate()
    assert (
        server.wait() == -signal.SIGTERM
    )  # uvicorn re-raises the signal it drained on
    lines = list(server.log_lines())
    access = [
        line for line in lines if line["logger"] == "beephost_http_backend.access"
    ]
    evals = [line for line in access if line["path"] == "/api/eval"]
    assert [(line["status"], line["error"]) for line in evals] == [
        (200, None),
        (422, "execution_failed"),
        (200, None),
    ]
    assert {line["client"] for line in evals} == {"127.0.0.1"}
    for line in evals:
        assert line["method"] == "POST"
        assert line["route"] == "/api/eval"
        assert line["ms"] > 0
        assert line["level"] == "info"
    assert TOKEN not in server.log.read_text()  # never logged


def test_healthcheck_fails_without_a_server(tmp_path: Path) -> None:
    checked = _healthcheck(free_port())
    assert checked.returncode == 1
    assert "ConnectionRefusedError" in checked.stdout


def test_refuses_an_open_network_port_without_a_token(tmp_path: Path) -> None:
    done = run_module("beephost_http_backend", BEEPHOST_HTTP_BACKEND_HOST="0.0.0.0")
    assert done.returncode != 0
    assert "without a token" in done.stderr


def test_sigterm_drains_and_answers_every_request(start_process: StartProcess) -> None:
    # No spare workers: the core can lose a spawning worker's hello under load, and its
    # shutdown then waits spawn_timeout (20 s) for that spawn (see the report).
    server = start_process(drain_timeout=2, prewarm=0)
    opener = Client(server.port)
    sessions = [
        opener.ok("POST", "/api/sessions", {}, status=201)["session"] for _ in range(3)
    ]
    opener.close()
    results: dict[str, Any] = {}

    def call(name: str, path: str, body: dict[str, Any]) -> None:
        client = Client(server.port)
        try:
            if path.endswith("/stream"):
                results[name] = client.stream(body)
            else:
                results[name] = client.post(path, body)
        except Exception as exc:  # reported below
            results[name] = exc
        finally:
            client.close()

    threads = [
        threading.Thread(
            target=call,
            args=(
                "quick",
                "/api/exec",
                {
                    "code": "import time\ntime.sleep(1)\n'finished'",
                    "session": sessions[0],
                },
            ),
        ),
        threading.Thread(
            target=call,
            args=(
                "slow",
                "/api/exec",
                {"code": "import time\ntime.sleep(20)", "session": sessions[1]},
            ),
        ),
        threading.Thread(
            target=call,
            args=(
                "stream",
                "/api/exec/stream",
                {
                    "code": "import time\nprint('started', flush=True)\ntime.sleep(20)",
                    "session": sessions[2],
                },
            ),
        ),
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # all three are running
    terminated = time.monotonic()
    server.terminate()
    time.sleep(0.3)
    with pytest.raises(ConnectionError):  # no longer accepting: refused, or reset
        Client(server.port, timeout=5).get("/ready")
    for thread in threads:
        thread.join(timeout=30)
    status = server.wait(timeout=30)
    log = server.log.read_text()[-3000:]
    assert status == -signal.SIGTERM, log
    assert time.monotonic() - terminated < 2 + 8, log  # the drain, then a prompt exit

    quick = results["quick"]
    assert isinstance(quick, Reply), quick
    assert (quick.status, quick.json["value"]) == (200, "finished")
    slow = results["slow"]
    assert isinstance(slow, Reply), slow
    assert slow.status == 503
    assert slow.error["code"] == "unavailable"
    stream = results["stream"]
    assert isinstance(stream, StreamReply), stream
    assert stream.status == 200
    objects = [obj for _, obj in stream.lines]
    assert objects[0] == {"event": "stdout", "data": "started\n"}
    assert objects[-1]["error"]["code"] == "unavailable"
    messages = [line["msg"] for line in server.log_lines()]
    assert any("Shutting down" in message for message in messages)


def test_sigterm_with_nothing_in_flight_exits_at_once(
    start_process: StartProcess,
) -> None:
    server = start_process(drain_timeout=30, prewarm=0)  # see above
    started = time.monotonic()
    server.terminate()
    status = server.wait(timeout=30)
    log = server.log.read_text()[-3000:]
    assert status == -signal.SIGTERM, log
    assert time.monotonic() - started < 10, log  # no drain to wait for
    assert all(line["level"] for line in server.log_lines())


def test_a_backend_told_its_workspace_serves_with_the_worker_it_started_first(
    start_process: StartProcess, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    server = start_process(token=TOKEN, workspace_dir=workspace)
    client = Client(server.port, TOKEN)
    pid = client.eval("__import__('os').getpid()")
    client.close()
    server.stop()
    early = f"the default session's worker (pid {pid}) was started early"
    assert any(line["msg"] == early for line in server.log_lines()), server.log
