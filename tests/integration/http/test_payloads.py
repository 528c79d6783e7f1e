"""Unicode and multi-megabyte payloads, both ways."""

import json

from tests.integration.http.support import Client

UNICODE = "ü ß € 漢字 ‏עברית‎ 🐍🚀 \u0000 \t \\ \" ' \u2028"


def test_unicode_round_trips(client: Client) -> None:
    assert client.eval("s", locals={"s": UNICODE}) == UNICODE
    assert client.eval("len(s)", locals={"s": UNICODE}) == len(UNICODE)
    result = client.ok(
        "POST", "/api/exec", {"code": f"print({UNICODE!r})\n{UNICODE!r}"}
    )
    assert result["stdout"] == UNICODE + "\n"
    assert result["value"] == UNICODE
    stream = client.stream({"code": f"print({UNICODE!r}, flush=True)"})
    assert stream.lines[0][1] == {"event": "stdout", "data": UNICODE + "\n"}


def test_responses_are_utf8_json(client: Client) -> None:
    reply = client.post("/api/eval", {"expression": "'漢字🐍'"})
    assert reply.headers["content-type"] == "application/json"
    assert reply.body == '{"value":"漢字🐍"}'.encode()


def test_unicode_in_names_and_errors(client: Client) -> None:
    client.ok("POST", "/api/exec", {"code": "größe = 'groß'"})
    assert client.eval("größe") == "groß"
    error = client.post("/api/eval", {"expression": "raise_me_ünïcode"}).error
    assert "ünïcode" in error["message"] + error["data"]["traceback"]


def test_lone_surrogates_come_back_escaped(client: Client) -> None:
    reply = client.post("/api/eval", {"expression": "'a\\udcff'"})
    assert reply.status == 200
    assert json.loads(reply.body) == {"value": "a\udcff"}


def test_multi_megabyte_request_and_result(client: Client) -> None:
    big = "ab€" * 1_500_000  # 7.5 MB of UTF-8 in, and the same out
    assert client.eval("len(s)", locals={"s": big}) == len(big)
    echoed = client.post("/api/eval", {"expression": "s[::-1]", "locals": {"s": big}})
    assert echoed.status == 200
    assert echoed.json["value"] == big[::-1]
    made = client.ok(
        "POST", "/api/exec", {"code": "print('x' * 900_000)\n'y' * 3_000_000"}
    )
    assert made["stdout"] == "x" * 900_000 + "\n"
    assert made["value"] == "y" * 3_000_000
    values = client.eval("list(range(200_000))")
    assert values == list(range(200_000))


def test_large_bytes_round_trip(client: Client) -> None:
    import base64

    blob = bytes(range(256)) * 8192  # 2 MiB
    encoded = base64.b64encode(blob).decode()
    assert client.eval("b[::-1]", locals={"b": {"$bytes": encoded}}) == {
        "$bytes": base64.b64encode(blob[::-1]).decode()
    }
