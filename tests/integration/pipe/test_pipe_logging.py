"""What the pipe backend logs about refused, dropped and lost things: one line each,
naming the peer (and the session), never the token. A real process, its real log."""

import json
import os
from pathlib import Path
from typing import Any

from tests.integration.pipe.support import PipeServerProcess, StartServer

TOKEN = "sekrit-token-for-logs-0123"
WRONG = "wrong-token-for-logs-4567"
STUBBORN = (
    "import time\nwhile True:\n    try:\n        time.sleep(1)\n"
    "    except KeyboardInterrupt:\n        pass"
)


def _log(server: PipeServerProcess) -> list[dict[str, Any]]:
    path = server.socket_path.parent / "server.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _lines(server: PipeServerProcess, needle: str) -> list[dict[str, Any]]:
    return [line for line in _log(server) if needle in line["msg"]]


def test_each_event_is_one_line_with_the_peer_and_no_token(
    start_server: StartServer,
) -> None:
    server = start_server(token=TOKEN, max_connections=2, kill_grace=0.3)
    peer = f"peer pid {os.getpid()} uid {os.getuid()}"

    wrong = server.connect()
    assert wrong.error("hello", token=WRONG)["code"] == "unauthorized"
    early = server.connect()
    assert early.error("eval", expression="1")["code"] == "unauthorized"
    [refused] = _lines(server, "invalid token")
    [before_hello] = _lines(server, "before 'hello'")
    assert refused["level"] == before_hello["level"] == "warning"

    client = server.connect()
    assert client.result("hello", token=TOKEN)["auth_required"] is True
    client.send_raw(b"{not json\n")
    assert client.read()["error"]["code"] == "invalid_request"
    [dropped] = _lines(server, "dropped a bad frame")

    other = server.connect()  # the second: at the limit of 2
    assert other.result("hello", token=TOKEN)["auth_required"] is True
    turned_away = server.connect()
    assert turned_away.read()["error"]["code"] == "unavailable"
    [limit] = _lines(server, "turned away")

    session = client.result("session.open")["session"]
    died = client.error("exec", session=session, code="import os\nos._exit(3)")
    assert died["code"] == "session_lost"
    [lost] = _lines(server, "lost its worker")
    assert session in lost["msg"]

    killed = client.error("exec", code=STUBBORN, timeout=0.3)
    assert (killed["code"], killed["data"]["state_lost"]) == ("timeout", True)
    [deadline] = _lines(server, "at the deadline")
    assert "session default" in deadline["msg"]

    for line in (refused, before_hello, dropped, limit, lost, deadline):
        assert peer in line["msg"], line
        assert line["level"] in ("warning", "info"), line
    text = (server.socket_path.parent / "server.log").read_text()
    assert TOKEN not in text
    assert WRONG not in text


def test_a_dropped_oversized_frame_is_one_info_line(
    start_server: StartServer,
) -> None:
    server = start_server(max_frame_bytes=4096)
    client = server.connect()
    client.send_raw(
        b'{"id": 1, "type": "eval", "params": {"expression": "' + b"1" * 8000 + b'"}}\n'
    )
    assert client.read()["error"]["code"] == "too_large"
    [line] = _lines(server, "over the 4096-byte limit")
    assert line["level"] == "info"
    assert f"pid {os.getpid()}" in line["msg"]
    assert Path(server.socket_path).exists()
