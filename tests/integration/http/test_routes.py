"""Every route answers as documented, through a real server and a real HTTP client."""

import json

from tests.integration.http.support import Client, ThreadServer
from tests.results import exec_result


def test_eval_with_locals_and_lossless_values(client: Client) -> None:
    assert client.eval("1+1") == 2
    assert client.eval("x * 2", locals={"x": {"$tuple": [1]}}) == {"$tuple": [1, 1]}
    assert client.eval("[2**100, float('nan'), b'\\x00', {1: 2}]") == [
        2**100,
        {"$float": "nan"},
        {"$bytes": "AA=="},
        {"$map": [[1, 2]]},
    ]


def test_exec_captures_output_and_the_trailing_value(client: Client) -> None:
    result = client.ok(
        "POST",
        "/api/exec",
        {
            "code": "import sys\nprint('out')\nprint('err', file=sys.stderr)\nrv_x = 5\nrv_x + 1"
        },
    )
    assert result == exec_result(
        stdout="out\n", stderr="err\n", value=6, has_value=True
    )
    assert client.eval("rv_x") == 5  # the default session keeps its namespace


def test_exec_stream_ends_with_the_result(client: Client) -> None:
    reply = client.stream({"code": "print('a')\n'done'"})
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/x-ndjson"
    objects = [obj for _, obj in reply.lines]
    assert objects[0] == {"event": "stdout", "data": "a\n"}
    assert objects[-1]["result"]["value"] == "done"


def test_session_lifecycle(client: Client) -> None:
    opened = client.ok("POST", "/api/sessions", {"ttl": 120}, status=201)
    session = opened["session"]
    assert opened == {"session": session, "ttl": 120}
    assert session in client.ok("GET", "/api/sessions")["sessions"]
    client.ok("POST", "/api/exec", {"code": "mine = 1", "session": session})
    assert client.eval("mine", session=session) == 1
    described = client.ok("GET", f"/api/sessions/{session}")
    assert described["session"] == session
    assert described["environment"] == "test-env"
    assert described["ttl"] == 120
    assert described["requests"] == 3  # the info request counts itself
    assert described["implementation"] == "CPython"
    assert client.ok("POST", f"/api/sessions/{session}/interrupt") == {
        "interrupted": False
    }
    assert client.ok("DELETE", f"/api/sessions/{session}") == {"closed": True}
    assert session not in client.ok("GET", "/api/sessions")["sessions"]


def test_open_session_without_a_body(client: Client) -> None:
    reply = client.request("POST", "/api/sessions", headers={"Content-Type": ""})
    assert reply.status == 201, reply.body
    client.ok("DELETE", f"/api/sessions/{reply.json['session']}")


def test_objects(client: Client) -> None:
    session = client.ok("POST", "/api/sessions", {}, status=201)["session"]
    base = f"/api/sessions/{session}/objects"
    created = client.ok(
        "POST",
        base,
        {"target": "collections.deque", "args": [[1, 2]], "kwargs": {"maxlen": 5}},
        status=201,
    )
    handle = created["value"]["$handle"]
    assert handle["type"] == "collections.deque"
    listed = client.ok("GET", base)["handles"]
    assert [h["id"] for h in listed] == [handle["id"]]
    assert client.ok("GET", f"{base}/{handle['id']}/attributes/maxlen") == {"value": 5}
    assert client.ok(
        "POST", f"{base}/{handle['id']}/call", {"method": "append", "args": [3]}
    ) == {"value": None}
    assert (
        client.ok("POST", f"{base}/{handle['id']}/call", {"method": "copy"})["value"][
            "$handle"
        ]["type"]
        == "collections.deque"
    )
    ns = client.ok("POST", base, {"target": "types.SimpleNamespace"}, status=201)
    ns_id = ns["value"]["$handle"]["id"]
    assert (
        client.ok(
            "PUT", f"{base}/{ns_id}/attributes/answer", {"value": {"$tuple": [4, 2]}}
        )
        == {}
    )
    assert client.ok("GET", f"{base}/{ns_id}/attributes/answer?timeout=5") == {
        "value": {"$tuple": [4, 2]}
    }
    released = client.ok("POST", f"{base}/release", {"handles": [handle["id"], "nope"]})
    assert released == {"released": 1}
    client.ok("DELETE", f"/api/sessions/{session}")


def test_health_ready_and_metrics(client: Client) -> None:
    assert client.ok("GET", "/health") == {"status": "ok"}
    assert client.ok("GET", "/ready") == {"ready": True}
    client.eval("2+2")
    reply = client.get("/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.body.decode()
    assert (
        'beephost_requests_total{command="eval",outcome="ok",transport="http"}' in text
    )
    assert (
        'beephost_http_requests_total{method="POST",route="/api/eval",status="200"}'
        in text
    )
    assert "beephost_http_request_seconds_bucket" in text
    assert "beephost_sessions " in text


def test_openapi_and_docs(shared_server: ThreadServer, client: Client) -> None:
    reply = client.get("/openapi.json")
    assert reply.status == 200
    served = reply.json
    app = shared_server.app
    assert json.loads(json.dumps(app.openapi())) == served
    docs = client.get("/docs")
    assert docs.status == 200
    assert docs.headers["content-type"].startswith("text/html")
    page = docs.body.decode()
    assert "<script" not in page  # nothing to fetch from a CDN
    for operations in served["paths"].values():
        for operation in operations.values():
            assert f"id='{operation['operationId']}'" in page


def test_unknown_fields_are_ignored(client: Client) -> None:
    reply = client.post("/api/eval", {"expression": "3", "from_the_future": True})
    assert (reply.status, reply.json) == (200, {"value": 3})


def test_a_put_creates_then_replaces_a_file(client: Client) -> None:
    octets = {"Content-Type": "application/octet-stream"}
    created = client.request(
        "PUT", "/api/files/routes/put.txt", raw=b"one", headers=octets
    )
    assert created.status == 201, created.body
    assert created.json["size"] == 3
    replaced = client.request(
        "PUT", "/api/files/routes/put.txt", raw=b"three", headers=octets
    )
    assert replaced.status == 200, replaced.body
    assert replaced.json["size"] == 5
    assert client.get("/api/files/routes/put.txt").body == b"three"
    client.ok("POST", "/api/fs/remove", {"path": "routes", "recursive": True})
