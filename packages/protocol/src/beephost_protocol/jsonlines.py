"""Newline-delimited JSON framing, sans-I/O: bytes in, frames out."""

import json
from dataclasses import dataclass
from typing import Any

from beephost_protocol.jsoncodec import compact_encoder, whole_decoder

# Built once: json.dumps with options constructs a new encoder on every call.
_encode_utf8 = compact_encoder(ensure_ascii=False)
_encode_ascii = compact_encoder(ensure_ascii=True)


def encode(message: dict[str, Any]) -> bytes:
    """Encode one message as a UTF-8 JSON line (strict JSON: no NaN/Infinity)."""
    try:
        return _encode_utf8(message).encode() + b"\n"
    except UnicodeEncodeError:
        # Lone surrogates cannot be UTF-8; JSON's \\u escapes can carry them.
        return _encode_ascii(message).encode() + b"\n"


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


#: Strict JSON text to Python: ``NaN``, ``Infinity`` and ``-Infinity`` (which ``json``
#: accepts by default) raise ValueError, as every transport refuses them.
decode_strict = whole_decoder(json.JSONDecoder(parse_constant=_reject_constant))


_HEAD = 256  # bytes of an over-long line kept, so its request id can still be read


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """Marks a line that exceeded the limit; all but its first bytes were discarded."""

    size: int
    head: bytes = b""


class LineDecoder:
    """Split a byte stream into lines of at most ``max_line`` bytes.

    An over-long line is discarded up to its newline and reported as :class:`LineTooLong`,
    so the stream stays usable after it: framing is recovered at the next ``\\n``.
    """

    def __init__(self, max_line: int) -> None:
        self._max_line = max_line
        self._buffer = bytearray()
        self._discarding = 0  # bytes dropped so far of an over-long line, 0 if none
        self._head = b""  # the first bytes of the line being discarded

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        frames: list[bytes | LineTooLong] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                self._keep(data, start)
                return frames
            if self._discarding:
                frames.append(LineTooLong(self._discarding + end - start, self._head))
                self._discarding = 0
            elif len(self._buffer) + end - start > self._max_line:
                head = (bytes(self._buffer) + data[start : min(end, start + _HEAD)])[
                    :_HEAD
                ]
                frames.append(LineTooLong(len(self._buffer) + end - start, head))
                self._buffer.clear()
            elif self._buffer:
                self._buffer += data[start:end]
                frames.append(bytes(self._buffer))
                self._buffer.clear()
            else:
                frames.append(data[start:end])
            start = end + 1

    @property
    def pending(self) -> int:
        """Bytes held (or being discarded) of an unfinished line."""
        return len(self._buffer) or self._discarding

    @property
    def max_line(self) -> int:
        return self._max_line

    def _keep(self, data: bytes, start: int) -> None:
        tail = len(data) - start
        if self._discarding:
            self._discarding += tail
        elif len(self._buffer) + tail > self._max_line:
            self._discarding = len(self._buffer) + tail
            self._head = (bytes(self._buffer) + data[start : start + _HEAD])[:_HEAD]
            self._buffer.clear()
        else:
            self._buffer += data[start:]
