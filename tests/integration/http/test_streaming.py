"""POST /api/exec/stream: NDJSON events as produced, then one result or error line."""

import time

from beephost_protocol import HTTP_STATUS, ErrorCode
from tests.integration.http.conftest import StartServer
from tests.integration.http.support import Client, ThreadServer
from tests.results import exec_result

SLOW = """
import sys, time
for i in range(3):
    print(i, flush=True)
    time.sleep(0.4)
print('warn', file=sys.stderr, flush=True)
'end'
"""


def test_events_arrive_before_the_code_finishes(client: Client) -> None:
    started = time.monotonic()
    reply = client.stream({"code": SLOW})
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/x-ndjson"
    assert reply.headers.get("transfer-encoding") == "chunked"
    arrivals = [arrival - started for arrival, _ in reply.lines]
    objects = [obj for _, obj in reply.lines]
    assert [o for o in objects if "event" in o] == [
        {"event": "stdout", "data": "0\n"},
        {"event": "stdout", "data": "1\n"},
        {"event": "stdout", "data": "2\n"},
        {"event": "stderr", "data": "warn\n"},
    ]
    # The first line came long before the end (the code runs for 1.2 s).
    assert arrivals[0] < arrivals[-1] - 0.6
    assert objects[-1] == {"result": exec_result(value="end", has_value=True)}
    assert all(set(o) == {"event", "data"} for o in objects[:-1])


def test_error_after_output_is_the_last_line(client: Client) -> None:
    reply = client.stream(
        {"code": "print('so far', flush=True)\nimport time\ntime.sleep(0.3)\n1/0"}
    )
    assert reply.status == 200  # the stream had started: the status cannot change
    objects = [obj for _, obj in reply.lines]
    assert objects[0] == {"event": "stdout", "data": "so far\n"}
    error = objects[-1]["error"]
    assert error["code"] == "execution_failed"
    assert error["data"]["type"] == "ZeroDivisionError"
    assert len([o for o in objects if "result" in o or "error" in o]) == 1


def test_error_before_any_output_is_an_ordinary_error(client: Client) -> None:
    reply = client.stream({"code": "1/0"})
    assert reply.status == HTTP_STATUS[ErrorCode.EXECUTION_FAILED]
    assert reply.headers["content-type"] == "application/json"
    assert reply.lines[0][1]["error"]["code"] == "execution_failed"
    missing = client.stream({"code": "1", "session": "s-nope"})
    assert missing.status == 404
    assert missing.lines[0][1]["error"]["code"] == "not_found"


def test_timeout_after_output_ends_the_stream(client: Client) -> None:
    reply = client.stream(
        {"code": "print('tick', flush=True)\nwhile True: pass"},
        headers={"X-Beephost-Timeout": "1"},
    )
    assert reply.status == 200
    objects = [obj for _, obj in reply.lines]
    assert objects[0] == {"event": "stdout", "data": "tick\n"}
    assert objects[-1]["error"]["code"] == "timeout"
    assert client.eval("'next'") == "next"


def test_silent_code_gives_one_result_line(client: Client) -> None:
    reply = client.stream({"code": "x_stream = 1\nx_stream + 1"})
    assert reply.status == 200
    assert [obj for _, obj in reply.lines] == [
        {"result": exec_result(value=2, has_value=True)}
    ]


def test_streamed_output_is_capped(start_server: StartServer) -> None:
    client = start_server(max_output_bytes=10_000).client()
    reply = client.stream(
        {"code": "for _ in range(100):\n    print('x' * 999, flush=True)"}
    )
    objects = [obj for _, obj in reply.lines]
    streamed = sum(len(o["data"]) for o in objects if "event" in o)
    assert streamed == 10_000
    assert objects[-1]["result"]["stdout_dropped"] == 100 * 1000 - 10_000


def test_client_leaving_mid_stream_leaves_the_server_healthy(
    client: Client, shared_server: ThreadServer
) -> None:
    session = client.ok("POST", "/api/sessions", {}, status=201)["session"]
    leaver = shared_server.client()
    leaver.conn.request(
        "POST",
        "/api/exec/stream",
        b'{"code": "import time\\nfor i in range(600):\\n    print(i, flush=True)\\n    time.sleep(0.2)\\ndone_here = True", "session": "%s"}'
        % session.encode(),
        leaver.headers(),
    )
    response = leaver.conn.getresponse()
    assert response.status == 200
    response.readline()
    leaver.close()  # gone after the first line
    # The code is interrupted (docs/protocol/http.md, 3): the session is usable at once.
    assert client.eval("'done_here' in globals()", session=session) is False
    client.ok("DELETE", f"/api/sessions/{session}")
