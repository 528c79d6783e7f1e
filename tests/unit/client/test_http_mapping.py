"""The HTTP API mapping and the asyncio transport's HTTP/1.1 codec, with bytes."""

import json

import pytest

import beephost_client as bc
from beephost_client._transports import _http11
from beephost_protocol import models as wire


def body(route: _http11.Route) -> object:
    assert route.body is not None
    return json.loads(route.body)


def test_every_command_has_its_route() -> None:
    r = _http11.route(wire.Evaluate(expression="x", locals={"x": 1}, timeout=2.0), "/p")
    assert (r.method, r.path, r.deadline) == ("POST", "/p/api/eval", 2.0)
    assert body(r) == {"expression": "x", "locals": {"x": 1}, "timeout": 2.0}
    r = _http11.route(wire.Execute(code="c", session="s-1", stream=True))
    assert (r.method, r.path, body(r)) == (
        "POST",
        "/api/exec/stream",
        {"code": "c", "session": "s-1"},
    )
    assert _http11.route(wire.Execute(code="c")).path == "/api/exec"
    assert body(_http11.route(wire.SessionOpen(ttl=5))) == {"ttl": 5}
    assert (
        _http11.route(wire.SessionList()).method,
        _http11.route(wire.SessionList()).body,
    ) == (
        "GET",
        None,
    )
    assert _http11.route(wire.SessionInfo(session="a/b")).path == "/api/sessions/a%2Fb"
    assert _http11.route(wire.SessionClose(session="s")).method == "DELETE"
    assert (
        _http11.route(wire.Interrupt(session="s")).path == "/api/sessions/s/interrupt"
    )
    r = _http11.route(wire.ObjectCreate(target="t", args=[1], session="s", timeout=1.0))
    assert (r.path, body(r)) == (
        "/api/sessions/s/objects",
        {"target": "t", "args": [1], "timeout": 1.0},
    )
    assert _http11.route(wire.ObjectList(session="s")).method == "GET"
    r = _http11.route(wire.ObjectGetAttr(handle="h", name="n"))
    assert (r.method, r.path) == ("GET", "/api/sessions/default/objects/h/attributes/n")
    r = _http11.route(wire.ObjectSetAttr(handle="h", name="n", value=None))
    assert (r.method, body(r)) == ("PUT", {"value": None, "timeout": None})
    r = _http11.route(wire.ObjectCall(handle="h", method="m", kwargs={"k": 1}))
    assert (r.path, body(r)) == (
        "/api/sessions/default/objects/h/call",
        {"method": "m", "kwargs": {"k": 1}},
    )
    r = _http11.route(wire.ObjectRelease(handles=["a", "b"]))
    assert (r.path, body(r)) == (
        "/api/sessions/default/objects/release",
        {"handles": ["a", "b"]},
    )


def test_responses_map_to_results_or_the_same_errors() -> None:
    assert _http11.result_or_error(200, b'{"value": 1}') == {"value": 1}
    assert _http11.result_or_error(201, b'{"session": "s"}') == {"session": "s"}
    error = {
        "error": {"code": "session_lost", "message": "gone", "data": {"exit_code": 3}}
    }
    with pytest.raises(bc.SessionLost) as caught:
        _http11.result_or_error(410, json.dumps(error).encode())
    assert caught.value.data == {"exit_code": 3}
    cause = caught.value.__cause__
    assert isinstance(cause, bc.ErrorReply)
    assert (cause.transport, cause.status) == ("http", 410)
    with pytest.raises(bc.InternalError):
        _http11.result_or_error(200, b"<html>")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, bc.Unauthorized),
        (503, bc.Unavailable),
        (504, bc.ExecutionTimeout),
        (502, bc.BeepHostError),
    ],
)
def test_a_status_without_an_error_object_falls_back_to_the_table(
    status: int, expected: type[bc.BeepHostError]
) -> None:
    with pytest.raises(expected) as caught:
        _http11.result_or_error(status, b"<html>proxy error</html>")
    assert type(caught.value) is expected
    assert "proxy error" in caught.value.message


def test_stream_lines() -> None:
    assert _http11.stream_item(b'{"event": "stderr", "data": "x"}') == bc.OutputChunk(
        "stderr", "x"
    )
    assert _http11.stream_item(b'{"result": {"value": 1}}') == {"value": 1}
    assert _http11.stream_item(b'{"event": "unknown"}') is None
    assert _http11.stream_item(b"  ") is None
    with pytest.raises(bc.ExecutionFailed):
        _http11.stream_item(
            b'{"error": {"code": "execution_failed", "message": "m", "data": {}}}'
        )
    with pytest.raises(bc.InternalError):
        _http11.stream_item(b"garbage")


def test_request_bytes_and_response_heads() -> None:
    data = _http11.request_bytes("POST", "/api/eval", "h:1", {"A": "b"}, b"{}")
    assert (
        data
        == b"POST /api/eval HTTP/1.1\r\nHost: h:1\r\nA: b\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert b"Content-Length" not in _http11.request_bytes("GET", "/", "h", {}, None)
    head = _http11.parse_head(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n"
        b"Transfer-Encoding: chunked\r\nX: 1\r\nx: 2\r\n\r\n"
    )
    assert (head.status, head.chunked, head.length, head.keep_alive) == (
        200,
        True,
        None,
        True,
    )
    assert head.headers["x"] == "1, 2"
    closing = _http11.parse_head(
        b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 5\r\n\r\n"
    )
    assert (closing.status, closing.length, closing.keep_alive) == (404, 5, False)
    assert _http11.parse_head(b"HTTP/1.0 200 OK\r\n\r\n").keep_alive is False
    with pytest.raises(_http11.ProtocolError):
        _http11.parse_head(b"SSH-2.0-OpenSSH\r\n\r\n")
    assert _http11.chunk_size(b"1a;ext=1\r\n") == 26
    with pytest.raises(_http11.ProtocolError):
        _http11.chunk_size(b"zz\r\n")
