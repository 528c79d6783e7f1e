"""The pipe backend as a real process on a real socket: every command, every error code."""

import json
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.pipe.support import (
    PipeClient,
    PipeServerProcess,
    StartServer,
    start_pipe_server,
    stop_pipe_server,
)
from tests.integration.processes import run_module


def test_hello_and_ping(client: PipeClient) -> None:
    hello = client.result("hello")
    assert hello["protocol"] == "1.0"
    assert hello["environment"] == "test-env"
    assert hello["auth_required"] is False
    assert client.result("ping") == {"pong": True, "ready": True}


def test_eval_exec_and_state(client: PipeClient) -> None:
    assert client.result("eval", expression="1+1") == {"value": 2}
    result = client.result("exec", code="x = 'ü' * 3\nprint(x)\nx.upper()")
    assert result["stdout"] == "üüü\n"
    assert result["value"] == "ÜÜÜ"
    assert result["has_value"] is True
    assert client.result("eval", expression="x + y", locals={"y": "!"}) == {
        "value": "üüü!"
    }
    lossless = client.result(
        "eval", expression="[2**100, float('nan'), float('-inf'), (1,), b'\\x00']"
    )
    assert lossless["value"] == [
        2**100,
        {"$float": "nan"},
        {"$float": "-inf"},
        {"$tuple": [1]},
        {"$bytes": "AA=="},
    ]


def test_streamed_exec_sends_events_before_the_result(client: PipeClient) -> None:
    client.send(
        {
            "id": 7,
            "type": "exec",
            "params": {
                "code": "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.2)\n'end'",
                "stream": True,
            },
        }
    )
    frames: list[dict[str, Any]] = []
    while not frames or "event" in frames[-1]:
        frames.append(client.read())
    assert [f["data"] for f in frames[:-1]] == ["0\n", "1\n", "2\n"]
    assert all(f["id"] == 7 and f["event"] == "stdout" for f in frames[:-1])
    assert frames[-1]["result"]["value"] == "end"


def test_object_operations(client: PipeClient) -> None:
    created = client.result(
        "object.create", target="collections.deque", args=[[1, 2]], kwargs={"maxlen": 5}
    )
    handle = created["value"]["$handle"]
    assert handle["type"] == "collections.deque"
    assert "deque([1, 2]" in handle["repr"]
    client.result("object.call", handle=handle["id"], method="append", args=[3])
    assert client.result("object.get_attr", handle=handle["id"], name="maxlen") == {
        "value": 5
    }
    assert client.result(
        "object.call", handle=handle["id"], method="count", args=[3]
    ) == {"value": 1}
    client.result("exec", code="class Box:\n    pass")
    box = client.result("object.create", target="Box")["value"]
    assert (
        client.result(
            "object.set_attr",
            handle=box["$handle"]["id"],
            name="content",
            value=created["value"],
        )
        == {}
    )
    same = client.result(
        "eval", expression="b.content is d", locals={"b": box, "d": created["value"]}
    )
    assert same == {"value": True}
    listed = client.result("object.list")["handles"]
    assert {h["id"] for h in listed} == {handle["id"], box["$handle"]["id"]}
    released = client.result(
        "object.release", handles=[handle["id"], handle["id"], "h-unknown"]
    )
    assert released == {"released": 1}
    assert (
        client.error("object.get_attr", handle=handle["id"], name="maxlen")["code"]
        == "not_found"
    )


def test_sessions(client: PipeClient) -> None:
    opened = client.result("session.open", ttl=60)
    session = opened["session"]
    assert opened["ttl"] == 60
    client.result("exec", code="v = 1", session=session)
    assert client.error("eval", expression="v")["code"] == "execution_failed"
    info = client.result("session.info", session=session)
    assert info["session"] == session
    assert info["environment"] == "test-env"
    assert info["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert info["packages"] == {}  # an empty environment
    assert session in client.result("session.list")["sessions"]
    assert client.result("session.close", session=session) == {"closed": True}
    assert client.error("session.info", session=session)["code"] == "not_found"


def test_user_exception_carries_type_message_and_traceback(client: PipeClient) -> None:
    error = client.error(
        "exec", code="print('before')\ndef f():\n    raise ValueError('bad ü')\nf()"
    )
    assert error["code"] == "execution_failed"
    assert error["message"] == "ValueError: bad ü"
    assert error["data"]["type"] == "ValueError"
    assert "raise ValueError('bad ü')" in error["data"]["traceback"]
    assert error["data"]["stdout"] == "before\n"


def test_timeout_returns_within_deadline_plus_grace_and_next_request_works(
    client: PipeClient,
) -> None:
    started = time.monotonic()
    error = client.error("exec", code="while True: pass", timeout=1)
    elapsed = time.monotonic() - started
    assert error["code"] == "timeout"
    assert error["data"]["state_lost"] is False
    assert elapsed < 1 + 0.5 + 1.0  # deadline + grace + slack for a loaded CI machine
    assert client.result("eval", expression="1+1") == {"value": 2}


def test_interrupt_from_another_connection(pipe_server: PipeServerProcess) -> None:
    runner, other = pipe_server.connect(), pipe_server.connect()
    runner.send(
        {"id": 1, "type": "exec", "params": {"code": "import time\ntime.sleep(60)"}}
    )
    time.sleep(0.3)
    assert other.result("interrupt") == {"interrupted": True}
    reply = runner.read()
    assert reply["id"] == 1
    assert reply["error"]["code"] == "interrupted"


@pytest.mark.parametrize(
    "code",
    ["import os; os._exit(1)", "import ctypes; ctypes.string_at(0)"],
    ids=["exit", "segfault"],
)
def test_dying_worker_is_session_lost_and_a_new_session_works(
    client: PipeClient, code: str
) -> None:
    session = client.result("session.open")["session"]
    error = client.error("exec", code=code, session=session)
    assert error["code"] == "session_lost"
    assert (
        client.error("eval", expression="1", session=session)["code"] == "session_lost"
    )
    fresh = client.result("session.open")["session"]
    assert client.result("eval", expression="2*3", session=fresh) == {"value": 6}


def test_malformed_frames_get_error_frames_and_the_connection_keeps_working(
    pipe_server: PipeServerProcess,
) -> None:
    bad, good = pipe_server.connect(), pipe_server.connect()
    cases = [
        (b"not json\n", None, "frame is not valid JSON"),
        (b"[1, 2]\n", None, "must be a JSON object"),
        (b'{"type": "ping"}\n', None, "needs an 'id'"),
        (b'{"id": 5}\n', 5, "needs a 'type'"),
        (b'{"id": 6, "type": "launch_missiles"}\n', 6, "unknown command"),
        (b'{"id": 7, "type": "eval", "params": {"expression": 1}}\n', 7, "expression"),
        (b'{"id": 8, "type": "eval", "params": []}\n', 8, "must be a JSON object"),
        (b"\xff\xfe\n", None, "not valid JSON"),
    ]
    for frame, request_id, message in cases:
        bad.send_raw(frame)
        reply = bad.read()
        assert reply["id"] == request_id
        assert reply["error"]["code"] == "invalid_request"
        assert message in reply["error"]["message"]
        assert good.result("eval", expression="1") == {"value": 1}
    assert bad.result("eval", expression="'still here'") == {"value": "still here"}


def test_unknown_fields_are_ignored(client: PipeClient) -> None:
    client.send(
        {
            "id": 1,
            "type": "eval",
            "params": {"expression": "3", "future": True},
            "extra": 1,
        }
    )
    assert client.read() == {"id": 1, "result": {"value": 3}}


def test_oversized_frame_is_refused_and_framing_recovers(
    start_server: StartServer,
) -> None:
    server = start_server(max_frame_bytes=4096)
    client, other = server.connect(), server.connect()
    big = json.dumps(
        {"id": 1, "type": "eval", "params": {"expression": "'" + "x" * 10_000 + "'"}}
    )
    client.send_raw(big.encode() + b"\n")
    reply = client.read()
    assert reply["id"] == 1
    assert reply["error"]["code"] == "too_large"
    assert reply["error"]["data"]["limit"] == 4096
    assert client.result("eval", expression="2") == {"value": 2}
    assert other.result("eval", expression="3") == {"value": 3}


def test_result_over_the_limit_is_too_large(start_server: StartServer) -> None:
    client = start_server(max_result_bytes=65536).connect()
    error = client.error("eval", expression="'x' * 100_000")
    assert error["code"] == "too_large"
    assert client.result("eval", expression="len('x' * 100_000)") == {"value": 100_000}


def test_multi_megabyte_unicode_payload_round_trips(client: PipeClient) -> None:
    text = "ünïcødé ✓ 𝄞 " * 200_000  # about 3.4 MB of UTF-8
    assert client.result("eval", expression="t[::-1][::-1]", locals={"t": text}) == {
        "value": text
    }


def test_quota_exceeded(start_server: StartServer) -> None:
    client = start_server(max_sessions=2, max_handles=1).connect()
    client.result("session.open")
    assert client.error("session.open")["code"] == "quota_exceeded"
    client.result("object.create", target="object")
    assert client.error("object.create", target="object")["code"] == "quota_exceeded"


def test_token_is_required_first_and_compared(start_server: StartServer) -> None:
    server = start_server(token="right-token")
    anonymous = server.connect()
    assert anonymous.result("ping")["pong"] is True  # liveness needs no token
    assert anonymous.error("eval", expression="1")["code"] == "unauthorized"
    with pytest.raises(ConnectionError):
        anonymous.read()  # refused connections are closed
    wrong = server.connect()
    assert wrong.error("hello", token="right-tokeN")["code"] == "unauthorized"
    not_a_string = server.connect()
    assert not_a_string.error("hello", token=["right-token"])["code"] == "unauthorized"
    good = server.connect()
    assert good.result("hello", token="right-token")["auth_required"] is True
    assert good.result("eval", expression="1") == {"value": 1}


def test_too_many_connections_is_unavailable(start_server: StartServer) -> None:
    server = start_server(max_connections=2)
    first, second = server.connect(), server.connect()
    first.result("ping"), second.result("ping")
    third = server.connect()
    assert third.read()["error"]["code"] == "unavailable"
    first.close()
    time.sleep(0.2)
    assert server.connect().result("eval", expression="1") == {"value": 1}


def test_corrupted_worker_channel_is_internal(client: PipeClient) -> None:
    error = client.error(
        "exec",
        code="import os, sys\nos.write(int(sys.argv[1]), b'}{\\n')\nimport time\ntime.sleep(2)",
    )
    assert error["code"] == "internal"
    assert client.result("eval", expression="1") == {"value": 1}


def test_requests_on_one_connection_are_answered_by_id(client: PipeClient) -> None:
    session = client.result("session.open")["session"]
    client.send(
        {
            "id": "slow",
            "type": "exec",
            "params": {"code": "import time\ntime.sleep(1)\n'slow'"},
        }
    )
    client.send(
        {
            "id": "fast",
            "type": "eval",
            "params": {"expression": "'fast'", "session": session},
        }
    )
    first, second = client.read(), client.read()
    assert (first["id"], second["id"]) == ("fast", "slow")
    assert second["result"]["value"] == "slow"


def test_sixteen_clients_by_five_hundred_mixed_requests(
    pipe_server: PipeServerProcess,
) -> None:
    errors: list[str] = []

    def work(index: int) -> None:
        client = PipeClient(pipe_server.socket_path)
        try:
            session = (
                client.result("session.open")["session"] if index % 2 else "default"
            )
            for i in range(500):
                kind = i % 5
                if kind == 0:
                    assert client.result(
                        "eval", expression=f"{i}*2", session=session
                    ) == {"value": i * 2}
                elif kind == 1:
                    result = client.result(
                        "exec", code=f"v{index} = {i}\nprint(v{index})", session=session
                    )
                    assert result["stdout"] == f"{i}\n"
                elif kind == 2:
                    handle = client.result(
                        "object.create", target="list", args=[[i]], session=session
                    )
                    hid = handle["value"]["$handle"]["id"]
                    assert client.result(
                        "object.call", handle=hid, method="pop", session=session
                    ) == {"value": i}
                    assert client.result(
                        "object.release", handles=[hid], session=session
                    ) == {"released": 1}
                elif kind == 3:
                    assert (
                        client.error("eval", expression="1/0", session=session)["code"]
                        == "execution_failed"
                    )
                else:
                    assert client.result("ping")["pong"] is True
            if session != "default":
                client.result("session.close", session=session)
        except Exception as exc:
            errors.append(f"client {index}: {exc!r}")
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    check = pipe_server.connect()
    assert check.result("session.list")["sessions"] == ["default"]
    assert check.result("object.list")["handles"] == []


def test_twenty_megabyte_print_is_truncated_not_buffered(
    pipe_server: PipeServerProcess,
) -> None:
    client = pipe_server.connect()
    client.result("eval", expression="1")
    before = pipe_server.rss_high_water_kib()
    result = client.result("exec", code="print('x' * 20_000_000)")
    after = pipe_server.rss_high_water_kib()
    assert result["stdout_dropped"] > 18_000_000
    assert len(result["stdout"]) < (1 << 20) + 100
    assert result["stdout"].endswith("bytes truncated]")
    assert after - before < 10 * 1024  # the server never held the 20 MB


def test_metrics_are_served(client: PipeClient, pipe_server: PipeServerProcess) -> None:
    client.result("eval", expression="1")
    client.error("eval", expression="1/0")
    with urllib.request.urlopen(
        f"http://127.0.0.1:{pipe_server.metrics_port}/metrics", timeout=5
    ) as response:
        text = response.read().decode()
    assert (
        'beephost_requests_total{command="eval",outcome="ok",transport="pipe"}' in text
    )
    assert 'outcome="execution_failed"' in text
    assert "beephost_sessions 1.0" in text
    assert "beephost_request_seconds_bucket" in text


def test_healthcheck_command(pipe_server: PipeServerProcess, short_tmp: Path) -> None:
    def run(path: Path) -> subprocess.CompletedProcess[str]:
        return run_module(
            "beephost_pipe_backend",
            "healthcheck",
            BEEPHOST_PIPE_BACKEND_SOCKET_PATH=str(path),
        )

    healthy = run(pipe_server.socket_path)
    assert (healthy.returncode, healthy.stdout.strip()) == (0, "ready")
    missing = run(short_tmp / "absent.sock")
    assert missing.returncode == 1
    assert "FileNotFoundError" in missing.stdout


def test_socket_mode_stale_socket_and_running_server(
    short_tmp: Path, env_python: str
) -> None:
    directory = short_tmp / "s"
    directory.mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(directory / "pipe.sock"))  # bound but never listening: stale
    stale.close()
    server = start_pipe_server(directory, env_python, socket_mode="0o600")
    try:
        assert stat.S_IMODE(server.socket_path.stat().st_mode) == 0o600
        second = directory / "second"
        second.mkdir()
        refused = run_module(
            "beephost_pipe_backend",
            BEEPHOST_PIPE_BACKEND_SOCKET_PATH=str(server.socket_path),
            BEEPHOST_PIPE_BACKEND_METRICS_PORT="0",
        )
        assert refused.returncode != 0
        assert "another server is listening" in refused.stdout + refused.stderr
    finally:
        stop_pipe_server(server)
    assert not server.socket_path.exists()  # unlinked on shutdown
