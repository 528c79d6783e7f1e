"""Cases the pipe spec pins down (docs/protocol/pipe.md), against a real server."""

import json
from typing import Any

import pytest

from tests.integration.pipe.support import PipeClient


@pytest.mark.parametrize(
    "handle",
    [5, "h0123456789abcdef", None, {}, {"type": "date"}, {"id": 7}, {"id": None}],
    ids=["number", "bare-string", "null", "empty", "no-id", "number-id", "null-id"],
)
def test_a_malformed_handle_is_invalid_request_and_does_not_run(
    client: PipeClient, handle: Any
) -> None:
    error = client.error(
        "eval",
        expression="globals().__setitem__('ran', True)",
        locals={"v": {"$handle": handle}},
    )
    assert error["code"] == "invalid_request", error
    assert "$handle" in error["message"]
    assert [e["loc"] for e in error["data"]["errors"]] == [["locals"]]
    assert client.error("eval", expression="ran")["code"] == "execution_failed"


def test_a_well_formed_unknown_handle_is_still_not_found(client: PipeClient) -> None:
    error = client.error(
        "eval", expression="v", locals={"v": {"$handle": {"id": "h-gone"}}}
    )
    assert error["code"] == "not_found"
    assert error["data"]["handle"] == "h-gone"


def test_a_handle_key_inside_dict_is_plain_data(client: PipeClient) -> None:
    value = {"$dict": {"$handle": 5}}
    assert client.result("eval", expression="v", locals={"v": value}) == {
        "value": value
    }


@pytest.mark.parametrize("request_id", [b"1.0", b"1e3", b"true", b"null"])
def test_an_id_that_is_not_an_integer_or_string_is_refused(
    client: PipeClient, request_id: bytes
) -> None:
    client.send_raw(b'{"id": ' + request_id + b', "type": "ping"}\n')
    reply = client.read()
    assert reply["id"] is None
    assert reply["error"]["code"] == "invalid_request"
    assert client.result("ping")["pong"] is True


def test_a_ttl_over_the_maximum_is_granted_as_the_maximum(client: PipeClient) -> None:
    opened = client.result("session.open", ttl=1e9)
    assert opened["ttl"] == 86400.0
    assert client.result("session.info", session=opened["session"])["ttl"] == 86400.0


def test_duplicate_unanswered_ids_are_both_run_and_answered(
    client: PipeClient,
) -> None:
    client.send_raw(
        b'{"id": 8, "type": "exec", "params": {"code": "hits = 1"}}\n'
        b'{"id": 8, "type": "exec", "params": {"code": "hits += 1"}}\n'
    )
    replies = [client.read(), client.read()]
    assert [r["id"] for r in replies] == [8, 8]
    assert all("result" in r for r in replies)
    assert client.result("eval", expression="hits") == {"value": 2}


def test_lone_surrogates_travel_as_escapes(client: PipeClient) -> None:
    client.send_raw(
        b'{"id": 1, "type": "eval", "params": {"expression": "s + chr(0x1F600)",'
        b' "locals": {"s": "\\ud800"}}}\n'
    )
    line = client.reader.readline()
    assert line.isascii()  # not UTF-8 (it cannot be): every non-ASCII char escaped
    assert b'"\\ud800\\ud83d\\ude00"' in line
    assert json.loads(line) == {"id": 1, "result": {"value": "\ud800\U0001f600"}}
