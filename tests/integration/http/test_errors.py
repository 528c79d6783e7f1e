"""Every error code comes back with its status from HTTP_STATUS and the error body."""

import contextlib
import http.client
import socket
import threading
import time
from typing import Any

import pytest

from beephost_protocol import HTTP_STATUS, ErrorCode
from tests.integration.http.conftest import TOKEN, StartServer
from tests.integration.http.support import Client, Reply, ThreadServer


def expect(reply: Reply, code: ErrorCode) -> dict[str, Any]:
    assert reply.status == HTTP_STATUS[code], (reply.status, reply.body[:2000])
    assert reply.headers["content-type"] == "application/json"
    error = reply.error
    assert error["code"] == code.value
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["data"], dict)
    return error


# -- execution_failed, timeout, interrupted, session_lost, internal -------------------


def test_execution_failed_carries_the_remote_traceback(client: Client) -> None:
    error = expect(
        client.post("/api/eval", {"expression": "1/0"}), ErrorCode.EXECUTION_FAILED
    )
    assert error["data"]["type"] == "ZeroDivisionError"
    assert error["data"]["module"] == "builtins"
    assert "1/0" in error["data"]["traceback"]
    assert "site-packages" not in error["data"]["traceback"]  # never a server traceback
    raised = client.post("/api/exec", {"code": "print('before')\nraise KeyError('k')"})
    data = expect(raised, ErrorCode.EXECUTION_FAILED)["data"]
    assert data["type"] == "KeyError"
    assert data["stdout"] == "before\n"


def test_timeout_interrupts_and_the_next_request_works(client: Client) -> None:
    started = time.monotonic()
    reply = client.post("/api/exec", {"code": "while True: pass", "timeout": 1})
    elapsed = time.monotonic() - started
    error = expect(reply, ErrorCode.TIMEOUT)
    assert error["data"]["state_lost"] is False
    assert 1.0 <= elapsed < 1.0 + 0.5 + 1.5  # deadline + kill grace + slack
    assert client.eval("40 + 2") == 42


def test_timeout_from_the_header(client: Client) -> None:
    reply = client.post(
        "/api/exec",
        {"code": "import time\ntime.sleep(5)"},
        headers={"X-Beephost-Timeout": "0.5"},
    )
    expect(reply, ErrorCode.TIMEOUT)
    # The body's timeout wins over the header's.
    reply = client.post(
        "/api/eval",
        {"expression": "__import__('time').sleep(0.7) or 1", "timeout": 5},
        headers={"X-Beephost-Timeout": "0.2"},
    )
    assert (reply.status, reply.json) == (200, {"value": 1})


def test_timeout_kills_a_worker_that_ignores_the_interrupt(client: Client) -> None:
    session = client.ok("POST", "/api/sessions", {}, status=201)["session"]
    code = (
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
    )
    started = time.monotonic()
    reply = client.post("/api/exec", {"code": code, "timeout": 1, "session": session})
    assert time.monotonic() - started < 1.0 + 0.5 + 2.0
    assert expect(reply, ErrorCode.TIMEOUT)["data"]["state_lost"] is True
    assert client.ok("DELETE", f"/api/sessions/{session}") == {"closed": True}


def test_interrupt_stops_running_code(
    client: Client, shared_server: ThreadServer
) -> None:
    session = client.ok("POST", "/api/sessions", {}, status=201)["session"]
    runner = shared_server.client()
    replies: list[Reply] = []
    thread = threading.Thread(
        target=lambda: replies.append(
            runner.post(
                "/api/exec", {"code": "import time\ntime.sleep(30)", "session": session}
            )
        )
    )
    thread.start()
    deadline = time.monotonic() + 10
    while True:  # until the sleep runs: an interrupt before that finds nothing
        answer = client.ok("POST", f"/api/sessions/{session}/interrupt")
        if answer["interrupted"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert answer == {"interrupted": True}
    thread.join(timeout=10)
    error = expect(replies[0], ErrorCode.INTERRUPTED)
    assert error["data"]["stdout"] == ""
    assert client.eval("1", session=session) == 1  # state kept, session usable
    client.ok("DELETE", f"/api/sessions/{session}")


def test_session_lost_when_the_worker_dies(client: Client) -> None:
    session = client.ok("POST", "/api/sessions", {}, status=201)["session"]
    reply = client.post(
        "/api/exec", {"code": "import os\nos._exit(3)", "session": session}
    )
    error = expect(reply, ErrorCode.SESSION_LOST)
    assert error["data"]["session"] == session
    again = client.post("/api/eval", {"expression": "1", "session": session})
    assert expect(again, ErrorCode.SESSION_LOST)["data"]["session"] == session
    assert client.ok("DELETE", f"/api/sessions/{session}") == {"closed": True}
    expect(
        client.post("/api/eval", {"expression": "1", "session": session}),
        ErrorCode.NOT_FOUND,
    )


def test_internal_when_the_worker_channel_breaks(client: Client) -> None:
    # User code writes garbage into the worker's channel: a corrupt channel is our
    # side's failure to keep the protocol, reported as internal (never a traceback).
    code = "import os, sys\nos.write(int(sys.argv[1]), b'garbage\\n')\nimport time\ntime.sleep(1)"
    session = client.ok("POST", "/api/sessions", {}, status=201)["session"]
    error = expect(
        client.post("/api/exec", {"code": code, "session": session}), ErrorCode.INTERNAL
    )
    assert "Traceback" not in error["message"]
    assert error["data"]["state_lost"] is True
    client.request("DELETE", f"/api/sessions/{session}")


# -- invalid_request ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "headers"),
    [
        pytest.param(b'{"expression": ', None, id="malformed-json"),
        pytest.param(b"[1, 2]", None, id="not-an-object"),
        pytest.param(b'{"expression": 1}', None, id="wrong-type"),
        pytest.param(b"{}", None, id="missing-field"),
        pytest.param(
            b'{"expression": "1", "timeout": -1}', None, id="negative-timeout"
        ),
        pytest.param(b'{"expression": "1", "session": ""}', None, id="empty-session"),
        pytest.param(
            b'{"expression": "1"}', {"X-Beephost-Timeout": "soon"}, id="bad-header"
        ),
        pytest.param(
            b'{"expression": "1"}', {"X-Beephost-Timeout": "0"}, id="zero-header"
        ),
        pytest.param(b"\xff\xfe", None, id="not-utf8"),
    ],
)
def test_invalid_request(
    client: Client, raw: bytes, headers: dict[str, str] | None
) -> None:
    error = expect(
        client.post("/api/eval", raw=raw, headers=headers), ErrorCode.INVALID_REQUEST
    )
    errors = error["data"]["errors"]
    assert errors
    assert all({"loc", "msg", "type"} == set(e) for e in errors)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/exec", {"code": ["not", "a", "string"]}),
        ("POST", "/api/exec/stream", {}),
        ("POST", "/api/sessions", {"ttl": "long"}),
        ("GET", "/api/sessions/" + "s" * 129, None),
        ("POST", "/api/sessions/default/objects", {"target": ""}),
        ("PUT", "/api/sessions/default/objects/h/attributes/a", {}),
        ("POST", "/api/sessions/default/objects/h/call", {"args": {"not": "a list"}}),
        ("POST", "/api/sessions/default/objects/release", {"handles": "h"}),
        ("GET", "/api/sessions/default/objects/h/attributes/a?timeout=-1", None),
    ],
)
def test_invalid_request_on_every_body_route(
    client: Client, method: str, path: str, body: Any
) -> None:
    expect(client.request(method, path, body), ErrorCode.INVALID_REQUEST)


def test_wrong_method_is_invalid_request(client: Client) -> None:
    reply = client.request("DELETE", "/api/eval")
    assert reply.status == 405  # not from the table, like 415 (http.md §6)
    error = reply.error
    assert error["code"] == ErrorCode.INVALID_REQUEST.value
    assert error["data"] == {"status": 405}
    assert reply.headers["allow"] == "POST"


# -- not_found ------------------------------------------------------------------------


def test_not_found(client: Client) -> None:
    error = expect(
        client.post("/api/eval", {"expression": "1", "session": "s-nope"}),
        ErrorCode.NOT_FOUND,
    )
    assert error["data"] == {"session": "s-nope"}
    expect(client.get("/api/sessions/s-nope"), ErrorCode.NOT_FOUND)
    expect(client.request("DELETE", "/api/sessions/s-nope"), ErrorCode.NOT_FOUND)
    expect(
        client.get("/api/sessions/default/objects/h-nope/attributes/x"),
        ErrorCode.NOT_FOUND,
    )
    expect(
        client.post(
            "/api/sessions/default/objects", {"target": "no_such_module.thing"}
        ),
        ErrorCode.NOT_FOUND,
    )
    error = expect(client.get("/no/such/route"), ErrorCode.NOT_FOUND)
    assert error["message"] == "no route GET /no/such/route"


# -- too_large --------------------------------------------------------------------------


def test_too_large_body_by_content_length(start_server: StartServer) -> None:
    server = start_server(max_request_bytes=64 * 1024)
    client = server.client()
    big = "x" * (100 * 1024)
    error = expect(
        client.post("/api/eval", {"expression": f"len('{big}')"}), ErrorCode.TOO_LARGE
    )
    assert error["data"]["limit"] == 64 * 1024
    # The body was discarded, not read into memory, and the connection still works.
    assert client.eval("1+1") == 2
    assert client.eval(f"len('{'y' * 60_000}')") == 60_000


def test_too_large_keeps_the_connection(start_server: StartServer) -> None:
    server = start_server(max_request_bytes=2048)
    body = b'{"expression": "1", "pad": "' + b"x" * 5000 + b'"}'
    head = b"POST /api/eval HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for payload, status in [(body, b"413"), (b'{"expression": "6*7"}', b"200")]:
            sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
            assert reader.readline().split()[1] == status
            length = 0
            while (line := reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reply = reader.read(length)
        assert reply == b'{"value":42}'  # same connection, after the discarded body
        reader.close()


def test_too_large_chunked_body(start_server: StartServer) -> None:
    server = start_server(max_request_bytes=64 * 1024)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    chunks = [b'{"expression": "len(\'', *(b"x" * 16384 for _ in range(6)), b"')\"}"]
    conn.request(
        "POST",
        "/api/eval",
        iter(chunks),
        {"Content-Type": "application/json"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    reply = Reply(
        response.status,
        {k.lower(): v for k, v in response.getheaders()},
        response.read(),
    )
    assert expect(reply, ErrorCode.TOO_LARGE)["data"]["limit"] == 64 * 1024
    conn.close()
    # A chunked body under the limit is served.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request(
        "POST",
        "/api/eval",
        iter([b'{"expression": ', b'"6*7"}']),
        {"Content-Type": "application/json"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b'{"value":42}')
    conn.close()


def test_too_large_result(start_server: StartServer) -> None:
    client = start_server(max_result_bytes=1 << 20).client()
    error = expect(
        client.post("/api/eval", {"expression": "'x' * 2_000_000"}), ErrorCode.TOO_LARGE
    )
    assert error["data"]["limit"] == 1 << 20
    assert client.eval("len('x' * 2_000_000)") == 2_000_000


# -- quota_exceeded -----------------------------------------------------------------------


def test_quota_exceeded(start_server: StartServer) -> None:
    client = start_server(max_sessions=2, max_handles=2).client()
    session = client.ok("POST", "/api/sessions", {}, status=201)["session"]
    error = expect(client.post("/api/sessions", {}), ErrorCode.QUOTA_EXCEEDED)
    assert error["data"]["limit"] == 2
    base = f"/api/sessions/{session}/objects"
    for _ in range(2):
        client.ok("POST", base, {"target": "object"}, status=201)
    error = expect(client.post(base, {"target": "object"}), ErrorCode.QUOTA_EXCEEDED)
    assert error["data"]["limit"] == 2


# -- unauthorized -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}{chr(ord(TOKEN[-1]) + 1)}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer",
        "",
    ],
)
def test_unauthorized(start_server: StartServer, authorization: str | None) -> None:
    server = start_server(token=TOKEN)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    with contextlib.closing(conn):
        _refused_everywhere(conn, authorization)


def _refused_everywhere(
    conn: http.client.HTTPConnection, authorization: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    for method, path in [
        ("POST", "/api/eval"),
        ("GET", "/api/sessions"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/no/such/route"),  # no probing for routes without the token
    ]:
        conn.request(
            method, path, b'{"expression": "1"}' if method == "POST" else None, headers
        )
        response = conn.getresponse()
        reply = Reply(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read(),
        )
        expect(reply, ErrorCode.UNAUTHORIZED)
        assert reply.headers["www-authenticate"].startswith("Bearer")


def test_token_accepted_and_probes_open(start_server: StartServer) -> None:
    server = start_server(token=TOKEN)
    assert server.client(token=TOKEN).eval("1+1") == 2
    lower = server.client(token=TOKEN)
    reply = lower.post(
        "/api/eval", {"expression": "2"}, headers={"Authorization": f"bearer {TOKEN}"}
    )
    assert reply.status == 200  # the scheme is case-insensitive
    anonymous = Client(server.port)
    try:
        assert anonymous.ok("GET", "/health") == {"status": "ok"}
        assert anonymous.ok("GET", "/ready") == {"ready": True}
    finally:
        anonymous.close()


def test_public_docs_setting_opens_only_the_docs(start_server: StartServer) -> None:
    server = start_server(token=TOKEN, public_docs=True)
    anonymous = Client(server.port)
    try:
        schema = anonymous.ok("GET", "/openapi.json")
        assert (
            schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
        )
        assert anonymous.get("/docs").status == 200
        expect(anonymous.post("/api/eval", {"expression": "1"}), ErrorCode.UNAUTHORIZED)
    finally:
        anonymous.close()


# -- unavailable ---------------------------------------------------------------------------


def test_unavailable_while_draining(start_server: StartServer) -> None:
    server = start_server()
    client = server.client()
    assert client.eval("1") == 1
    server.state.begin_drain()  # what SIGTERM does first
    expect(client.post("/api/eval", {"expression": "1"}), ErrorCode.UNAVAILABLE)
    expect(client.get("/api/sessions"), ErrorCode.UNAVAILABLE)
    expect(client.get("/ready"), ErrorCode.UNAVAILABLE)
    assert client.ok("GET", "/health") == {"status": "ok"}


def test_refused_requests_do_not_wait_for_their_body(start_server: StartServer) -> None:
    # An unauthenticated client announcing a huge body gets its 401 at once.
    server = start_server(token=TOKEN)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/eval HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n"
        )
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 401 ")
