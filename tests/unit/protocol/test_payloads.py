"""Binary frames (pipe.md §4): lines and payloads split, limits kept, framing lost only
on a malformed prefix."""

import pytest

from beephost_protocol import LineTooLong
from beephost_protocol.payloads import (
    BadPrefix,
    FrameDecoder,
    FramingLost,
    PayloadTooLarge,
    WithPayload,
    binary_frame,
    split_prefix,
)


def _wire(line: bytes, payload: bytes) -> bytes:
    return b"".join(binary_frame(line, payload))


def test_a_payload_follows_its_line_whatever_bytes_it_holds() -> None:
    payload = b'\n{"id":9,"type":"ping"}\n\x00+3 '
    wire = _wire(b'{"id":1}\n', payload) + b'{"id":2}\n'
    assert FrameDecoder(100, 100).feed(wire) == [
        WithPayload(b'{"id":1}', payload),
        b'{"id":2}',
    ]


@pytest.mark.parametrize("cut", [1, 2, 5, 9, 10, 11, 20])
def test_frames_split_anywhere_across_reads(cut: int) -> None:
    wire = b'{"a":1}\n' + _wire(b'{"b":2}\n', b"0123456789") + b'{"c":3}\n'
    decoder = FrameDecoder(100, 100)
    frames = []
    for start in range(0, len(wire), cut):
        frames += decoder.feed(wire[start : start + cut])
    assert frames == [
        b'{"a":1}',
        WithPayload(b'{"b":2}', b"0123456789"),
        b'{"c":3}',
    ]
    assert decoder.pending == 0


def test_an_empty_payload_ends_with_its_line() -> None:
    assert FrameDecoder(100, 100).feed(b'+0 {"x":1}\n{"y":2}\n') == [
        WithPayload(b'{"x":1}', b""),
        b'{"y":2}',
    ]


def test_a_payload_over_the_limit_is_skipped_and_reported() -> None:
    decoder = FrameDecoder(100, 4)
    assert decoder.feed(b'+6 {"id":3}\nabc') == []
    assert decoder.pending == 0  # nothing of it is kept
    assert decoder.feed(b'def{"id":4}\n') == [
        PayloadTooLarge(6, b'{"id":3}'),
        b'{"id":4}',
    ]


def test_an_over_long_header_has_its_payload_skipped_too() -> None:
    decoder = FrameDecoder(10, 100)
    frames = decoder.feed(b'+3 {"id":1,"pad":"xxxxxxxx"}\nabc{"ok":1}\n')
    assert frames == [LineTooLong(28, b'{"id":1,"pad":"xxxxxxxx"}'), b'{"ok":1}']


def test_a_malformed_prefix_loses_the_framing_once() -> None:
    decoder = FrameDecoder(100, 100)
    frames = decoder.feed(b'{"a":1}\n+ten {"b":2}\n{"c":3}\n')
    assert frames[0] == b'{"a":1}'
    assert isinstance(frames[1], FramingLost)
    assert len(frames) == 2
    assert decoder.feed(b'{"d":4}\n') == []


def test_split_prefix() -> None:
    assert split_prefix(b'{"a":1}') is None
    assert split_prefix(b"+12 {}") == (12, b"{}")
    for bad in (b"+ {}", b"+12{}", b"+12345678901 {}", b"+-1 {}"):
        with pytest.raises(BadPrefix):
            split_prefix(bad)
