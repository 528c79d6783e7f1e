"""The pipe transport's framing and reply classification, with bytes and dicts."""

import json

import pytest

import beephost_client as bc
from beephost_client._transports import pipe
from beephost_protocol import Evaluate, Execute, ObjectSetAttr, UploadWrite


def _line(command: Evaluate | Execute | ObjectSetAttr, limit: int = 1 << 20) -> bytes:
    line, payload = pipe.request_frame(1, command, limit)
    assert payload == b""
    return line


def _one_json_line(line: bytes) -> object:
    """The JSON of ``line``, which ends with its only newline."""
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    return json.loads(line)


def test_request_line_is_one_json_line_with_defaults_left_out() -> None:
    line, payload = pipe.request_frame(
        7, Evaluate(expression="1 + 1", timeout=3.0), 1 << 20
    )
    assert payload == b""
    assert _one_json_line(line) == {
        "id": 7,
        "type": "eval",
        "params": {"expression": "1 + 1", "timeout": 3.0},
    }
    streamed = json.loads(_line(Execute(code="x", stream=True)))
    assert streamed["params"] == {"code": "x", "stream": True}
    unset = json.loads(_line(ObjectSetAttr(handle="h", name="n")))
    assert unset["params"] == {"handle": "h", "name": "n"}  # value None is the default


def test_a_line_over_the_servers_limit_is_refused_before_sending() -> None:
    with pytest.raises(bc.TooLarge) as caught:
        _line(Evaluate(expression="x" * 2000), 1024)
    assert caught.value.data["limit"] == 1024


def test_an_upload_write_sends_its_bytes_raw_after_a_prefixed_line() -> None:
    data = b"\x00\n\xff" * 1000
    line, payload = pipe.request_frame(
        4, UploadWrite(upload="u-1", offset=8, data=data), 1 << 20
    )
    assert payload is data  # written after the line as it is: not copied
    prefix, _, message = line.partition(b" ")
    assert prefix == b"+3000"
    assert _one_json_line(message) == {
        "id": 4,
        "type": "file.upload.write",
        "params": {"upload": "u-1", "offset": 8},
    }


def test_a_binary_reply_carries_its_payload_as_the_results_data() -> None:
    announced = pipe.announced_payload(b'+4 {"id":2,"result":{"eof":true}}\n')
    assert announced == (4, b'{"id":2,"result":{"eof":true}}\n')
    message = pipe.parse_line(announced[1])
    assert pipe.classify(message, 2, b"\x00\x01\n\x02") == {
        "eof": True,
        "data": b"\x00\x01\n\x02",
    }
    assert pipe.announced_payload(b'{"id":2,"result":{}}\n') is None
    with pytest.raises(bc.InternalError, match="bad binary frame"):
        pipe.announced_payload(b'+x {"id":2}\n')
    with pytest.raises(bc.InternalError, match="over the"):
        pipe.announced_payload(b"+9999999999 {}\n")


def test_hello() -> None:
    assert json.loads(pipe.hello_line(1, None)) == {
        "id": 1,
        "type": "hello",
        "params": {},
    }
    assert json.loads(pipe.hello_line(2, "t"))["params"] == {"token": "t"}
    hello = {
        "protocol": "1.3",
        "server": "beephost-pipe/test",
        "environment": "default",
        "auth_required": False,
        "max_frame_bytes": 99,
        "max_inflight": 4,
        "max_result_bytes": 1 << 20,
    }
    assert pipe.check_hello(hello) == 99
    with pytest.raises(bc.BadReply, match="max_frame_bytes"):
        pipe.check_hello({**hello, "max_frame_bytes": "big"})
    with pytest.raises(bc.InternalError, match="protocol"):
        pipe.check_hello({"protocol": "2.0"})


def test_classify_events_results_and_errors() -> None:
    assert pipe.classify(
        {"id": 3, "event": "stdout", "data": "hi"}, 3
    ) == bc.OutputChunk("stdout", "hi")
    assert pipe.classify({"id": 3, "result": {"value": 1}}, 3) == {"value": 1}
    assert pipe.classify({"id": 2, "result": {}}, 3) is None  # another request's reply
    assert (
        pipe.classify({"id": 3, "event": "progress", "data": 1}, 3) is None
    )  # unknown kind
    assert pipe.classify({"id": 3, "future": True}, 3) is None
    error = {"code": "not_found", "message": "no session", "data": {"session": "s"}}
    with pytest.raises(bc.NotFound) as caught:
        pipe.classify({"id": 3, "error": error}, 3)
    assert isinstance(caught.value.__cause__, bc.ErrorReply)
    assert caught.value.__cause__.payload == error
    with pytest.raises(
        bc.TooLarge
    ):  # an "id": null error answers the one request in flight
        pipe.classify(
            {"id": None, "error": {"code": "too_large", "message": "m", "data": {}}}, 3
        )
    with pytest.raises(bc.BeepHostError) as unknown:
        pipe.classify(
            {"id": 3, "error": {"code": "from_the_future", "message": "m"}}, 3
        )
    assert type(unknown.value) is bc.BeepHostError


def test_parse_line_refuses_garbage() -> None:
    assert pipe.parse_line(b'{"id": 1}\n') == {"id": 1}
    with pytest.raises(bc.InternalError):
        pipe.parse_line(b"not json\n")
    with pytest.raises(bc.InternalError):
        pipe.parse_line(b"[1]\n")
