"""A worker that dies, or is killed at a deadline, is one WARNING line naming the
session and the client (real server, in process, its log records)."""

import logging

import pytest

from tests.integration.http.conftest import StartServer

STUBBORN = (
    "import time\nwhile True:\n    try:\n        time.sleep(1)\n"
    "    except KeyboardInterrupt:\n        pass"
)


def _warnings(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and needle in r.getMessage()
    ]


def test_lost_and_killed_workers_are_logged_once(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = start_server(kill_grace=0.3).client()
    session = client.ok("POST", "/api/sessions", {}, status=201)["session"]
    died = client.post(
        "/api/exec", {"session": session, "code": "import os\nos._exit(3)"}
    )
    assert died.error["code"] == "session_lost"
    [lost] = _warnings(caplog, "lost its worker")
    assert f"session {session}" in lost
    assert "from 127.0.0.1:" in lost
    killed = client.post("/api/exec", {"code": STUBBORN, "timeout": 0.3})
    assert killed.error["code"] == "timeout"
    [deadline] = _warnings(caplog, "at the deadline")
    assert "session default" in deadline
    assert "from 127.0.0.1:" in deadline
