"""A worker's result forwarded as its bytes: the reply is byte for byte the re-encoded one."""

import json
from typing import Any

import pytest

from beephost_core._process import RAW_RESULT, _split_reply
from beephost_pipe_backend import dispatch

# The worker's reply encoder: ASCII, compact, no NaN (beephost_core.worker).
_worker_encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode

RESULTS = [
    {"value": 2},
    {"value": 'plain "quoted" \\ text\n\t'},
    {"value": "caf\u00e9 \u2603 \U0001f600"},
    {"value": "lone \ud83d surrogate"},
    {"value": "del \x7f and \x01 control"},
    {"value": [1.5, 1e16, -0.0, 10**20, None, True]},
    {"value": {"$handle": {"id": "h01", "type": "object"}}, "result": {"x": 1}},
    {"value": 'a ,"result": inside a string'},
]


@pytest.mark.parametrize("result", RESULTS)
@pytest.mark.parametrize("request_id", [7, -3, "req-\u00e9", 'r"1'])
def test_forwarded_result_is_the_reencoded_reply(
    result: dict[str, Any], request_id: int | str
) -> None:
    line = _worker_encode(
        {"id": 4, "handles": 1, "created": ["h01"], "result": result}
    ).encode()
    for wire in (line, line + b"\n"):
        head = _split_reply(wire)
        assert head is not None
        assert head["handles"] == 1
        assert head["created"] == ["h01"]
        forwarded = dispatch.reply_frame(request_id, head[RAW_RESULT])
        # What the backend sent before: the worker's line decoded, then encoded.
        decoded = json.loads(line)["result"]
        assert forwarded == (dispatch.result_frame(request_id, decoded),)


@pytest.mark.parametrize(
    "reply",
    [
        {"id": 0, "result": {"ready": True, "pid": 1}},  # the hello: no handles
        {"id": 3, "result": {"value": 1}, "handles": 0},  # result not last
        {"id": 3, "error": {"code": "x", "data": {"a": 1, "result": 2}}, "handles": 0},
        {"id": 3, "handles": 0, "error": {"data": {"b": 1, "result": 2}}},
    ],
)
def test_other_replies_are_decoded_whole(reply: dict[str, Any]) -> None:
    assert _split_reply(_worker_encode(reply).encode()) is None
