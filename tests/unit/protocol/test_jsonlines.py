"""Framing: lines split, over-long lines reported and skipped, strict JSON out."""

import json

import pytest

from beephost_protocol import LineDecoder, LineTooLong, encode


def test_lines_split_across_chunks() -> None:
    decoder = LineDecoder(max_line=100)
    assert decoder.feed(b'{"a":') == []
    assert decoder.feed(b'1}\n{"b":2}\n{"c"') == [b'{"a":1}', b'{"b":2}']
    assert decoder.pending == 4
    assert decoder.feed(b":3}\n") == [b'{"c":3}']
    assert decoder.pending == 0


def test_over_long_line_is_reported_once_and_framing_recovers() -> None:
    decoder = LineDecoder(max_line=10)
    assert decoder.feed(b"x" * 8) == []
    assert decoder.feed(b"y" * 8) == []  # now over the limit: discarding
    assert decoder.feed(b"z" * 5 + b'\n{"ok":1}\n') == [
        LineTooLong(21, b"x" * 8 + b"y" * 8),
        b'{"ok":1}',
    ]


def test_over_long_line_within_one_chunk() -> None:
    decoder = LineDecoder(max_line=4)
    assert decoder.feed(b"123456\n12\n") == [LineTooLong(6, b"123456"), b"12"]


def test_line_of_exactly_the_limit_is_accepted() -> None:
    assert LineDecoder(max_line=4).feed(b"1234\n") == [b"1234"]


def test_encode_is_one_strict_json_line() -> None:
    line = encode({"text": "héllo\nworld", "n": 10**30})
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line) == {"text": "héllo\nworld", "n": 10**30}
    with pytest.raises(ValueError, match="JSON compliant"):
        encode({"x": float("nan")})


def test_encode_carries_lone_surrogates_as_escapes() -> None:
    line = encode({"s": "a\udc80b"})
    assert b"\\udc80" in line
    assert json.loads(line) == {"s": "a\udc80b"}
