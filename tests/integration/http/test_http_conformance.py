"""HTTP semantics at the edges: strict JSON, Content-Type, HEAD and Allow, on a real server."""

import pytest

from tests.integration.http.support import Client

CHARSET_JSON = {"Content-Type": "application/json; charset=utf-8"}


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/api/eval", b'{"expression": "x", "locals": {"x": %s}}', None),
        ("/api/eval", b'{"expression": "x", "locals": {"x": [%s]}}', CHARSET_JSON),
        ("/api/exec", b'{"code": "x = 1", "timeout": %s}', None),
        ("/api/sessions", b'{"ttl": %s}', None),
    ],
    ids=["fast-lane", "routed", "exec", "sessions"],
)
def test_non_finite_numbers_are_not_json(
    client: Client,
    path: str,
    body: bytes,
    headers: dict[str, str] | None,
    constant: bytes,
) -> None:
    reply = client.post(path, raw=body % constant, headers=headers)
    assert reply.status == 400, reply.body
    error = reply.error
    assert error["code"] == "invalid_request"
    assert "not valid JSON" in error["message"]
    assert (
        client.eval("'NaN' + 'Infinity'") == "NaNInfinity"
    )  # in strings they are text


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", None]
)
def test_a_body_that_is_not_json_is_refused_naming_the_type(
    client: Client, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type or ""}
    reply = client.post("/api/eval", raw=b'{"expression": "1"}', headers=headers)
    assert reply.status == 415, reply.body
    error = reply.error
    assert error["code"] == "invalid_request"
    assert error["data"]["status"] == 415
    assert "application/json" in error["message"]
    assert client.eval("1") == 1


def test_a_json_suffix_media_type_is_json(client: Client) -> None:
    headers = {"Content-Type": "application/vnd.beephost+json"}
    reply = client.post("/api/eval", raw=b'{"expression": "2"}', headers=headers)
    assert (reply.status, reply.json) == (200, {"value": 2})


@pytest.mark.parametrize("path", ["/api/sessions", "/health", "/ready"])
def test_head_answers_like_get_without_a_body(client: Client, path: str) -> None:
    get = client.get(path)
    head = client.request("HEAD", path)
    assert (head.status, head.body) == (get.status, b"")
    assert head.headers["content-type"] == get.headers["content-type"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/sessions", {"GET", "HEAD", "POST"}),
        ("POST", "/api/sessions/s-x", {"GET", "HEAD", "DELETE"}),
        ("PATCH", "/api/sessions/s-x/objects/h1/attributes/a", {"GET", "HEAD", "PUT"}),
        ("GET", "/api/eval", {"POST"}),
        ("HEAD", "/api/eval", {"POST"}),
    ],
)
def test_wrong_method_lists_every_allowed_method(
    client: Client, method: str, path: str, allowed: set[str]
) -> None:
    reply = client.request(method, path, raw=b"{}" if method != "HEAD" else None)
    assert reply.status == 405
    if method != "HEAD":
        assert reply.error["data"]["status"] == 405
    assert set(reply.headers["allow"].split(", ")) == allowed
