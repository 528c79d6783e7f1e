"""The fast lane and the FastAPI routes answer byte for byte alike."""

from typing import Any

import pytest

from tests.integration.http.support import Client

# "+json" is JSON to FastAPI but not to the fast lane: the request takes the routes.
VIA_FASTAPI = {"Content-Type": "application/vnd.beephost+json"}


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/api/eval", {"expression": "1+1"}, {}),
        ("/api/eval", {"expression": "x", "locals": {"x": {"$tuple": [1]}}}, {}),
        ("/api/eval", {"expression": "1/0"}, {}),
        ("/api/eval", {"expression": "1", "session": "s-nope"}, {}),
        (
            "/api/eval",
            {"expression": "__import__('time').sleep(2)"},
            {"X-Beephost-Timeout": "0.3"},
        ),
        ("/api/eval", {"expression": "'x' * 10", "unknown": 1}, {}),
        ("/api/exec", {"code": "print('p')\n'v'"}, {}),
        ("/api/exec", {"code": "raise ValueError('no')"}, {}),
        ("/api/exec", {"code": "import time\ntime.sleep(2)", "timeout": 0.3}, {}),
    ],
)
def test_same_answer_on_both_paths(
    client: Client, path: str, body: dict[str, Any], headers: dict[str, str]
) -> None:
    fast = client.post(path, body, headers=headers)
    slow = client.post(path, body, headers={**headers, **VIA_FASTAPI})
    assert fast.status == slow.status
    assert fast.headers["content-type"] == slow.headers["content-type"]
    assert _stable(fast.json) == _stable(slow.json)


def test_invalid_requests_fall_back_to_the_routes(client: Client) -> None:
    fast = client.post("/api/eval", raw=b'{"expression": 1}')
    slow = client.post("/api/eval", raw=b'{"expression": 1}', headers=VIA_FASTAPI)
    assert fast.status == slow.status == 400
    assert fast.json == slow.json
    bad_header = client.post(
        "/api/eval", {"expression": "1"}, headers={"X-Beephost-Timeout": "nan"}
    )
    assert bad_header.status == 400


def test_charset_parameter_takes_the_fast_lane(client: Client) -> None:
    reply = client.post(
        "/api/eval",
        {"expression": "'ok'"},
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert (reply.status, reply.json) == (200, {"value": "ok"})


def _stable(obj: Any) -> Any:
    # Tracebacks name the code object of each request (<beephost-N>): strip the numbers.
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items() if k != "traceback"}
    return obj


@pytest.mark.parametrize(
    "expression",
    [
        "'ü🐍 café'",  # beyond ASCII: the worker escapes it, the response is UTF-8
        "'a\\udcff'",  # a lone surrogate: escaped on both paths
        "'tab\\t nl\\n quote\" backslash\\\\ del\\x7f'",
        "'a literal \\\\u0041'",  # backslash-u in the text itself
        "[1.5, -0.0, 1e300, 10**30, True, None, {'k': 'v'}]",
        "{'$': 1, 'x': (1, 2)}",
    ],
)
def test_values_are_the_routes_bytes(client: Client, expression: str) -> None:
    """The lane forwards the worker's result text where it is the same bytes."""
    fast = client.post("/api/eval", {"expression": expression})
    slow = client.post("/api/eval", {"expression": expression}, headers=VIA_FASTAPI)
    assert fast.status == slow.status == 200
    assert fast.body == slow.body
    assert int(fast.headers["content-length"]) == len(fast.body)
