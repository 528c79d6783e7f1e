"""Binary frames on the pipe (pipe.md §4, "Binary frames"), sans-I/O.

A frame that carries raw bytes is its JSON line behind a length prefix, then the
bytes: ``+N {json}\\n`` and exactly N bytes after the newline. The bytes are the
message's ``data`` member, taken out of the JSON (no base64, no JSON escaping). The
length comes before the JSON so that the stream can be split without parsing it: a
header that is not valid JSON still has its payload skipped, and framing holds.
"""

import re
from dataclasses import dataclass

from beephost_protocol.jsonlines import LineDecoder, LineTooLong

#: The member of a message that a binary frame carries as its payload.
PAYLOAD_MEMBER = "data"
#: The requests that may carry one: their ``params.data`` is the payload.
PAYLOAD_REQUESTS = frozenset({"file.upload.write"})

_PREFIX = re.compile(rb"\+(\d{1,10}) ")


class BadPrefix(ValueError):
    """A line starts with ``+`` but not with ``+N ``: where its payload ends is unknown."""


def binary_frame(line: bytes, payload: bytes) -> tuple[bytes, bytes]:
    """``line`` (one encoded message, newline included) carrying ``payload``: the
    prefixed line, then the payload, to be written one after the other (joining them
    would copy the payload)."""
    return b"+%d " % len(payload) + line, payload


def split_prefix(line: bytes) -> tuple[int, bytes] | None:
    """The payload length a line announces and the line without its prefix.

    Returns:
        None for a plain JSON line.

    Raises:
        BadPrefix: The line starts with ``+`` but the prefix is malformed.
    """
    if not line.startswith(b"+"):
        return None
    match = _PREFIX.match(line)
    if match is None:
        raise BadPrefix(
            "a line starting with '+' must start with '+N ' (N: the payload's "
            "length, 1 to 10 digits, then one space)"
        )
    return int(match[1]), line[match.end() :]


@dataclass(frozen=True, slots=True)
class WithPayload:
    """A line that came with a binary payload (the line without its prefix)."""

    line: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class PayloadTooLarge:
    """A binary frame whose payload exceeded the limit; the payload was skipped."""

    size: int
    line: bytes


@dataclass(frozen=True, slots=True)
class FramingLost:
    """A malformed prefix: nothing after it can be split into frames."""

    reason: str


Frame = bytes | WithPayload | LineTooLong | PayloadTooLarge | FramingLost


class FrameDecoder:
    """Split a byte stream into lines and binary frames.

    Lines are bounded by ``max_line`` (an over-long one becomes :class:`LineTooLong`),
    payloads by ``max_payload`` (an over-long one is skipped and reported as
    :class:`PayloadTooLarge`); either way the stream stays usable. A malformed prefix
    is reported once as :class:`FramingLost`, and everything after it is ignored.
    """

    def __init__(self, max_line: int, max_payload: int) -> None:
        self._lines = LineDecoder(max_line)
        self._max_payload = max_payload
        self._header: bytes | LineTooLong = b""  # the line whose payload is coming
        self._size = 0  # the payload's announced length
        self._needed = 0  # its bytes still to come
        self._pieces: list[bytes] = []
        self._lost = False

    def feed(self, data: bytes) -> list[Frame]:
        if (
            # The common case: one whole plain line, nothing held from before. The
            # answer the loop below gives, without its layers (per-request cost).
            0 <= data.find(b"\n") == len(data) - 1
            and not self._needed
            and not self._lost
            and not self._lines.pending
            and len(data) <= self._lines.max_line
            and not data.startswith(b"+")
        ):
            return [data[:-1]]
        frames: list[Frame] = []
        position = 0
        while position < len(data) and not self._lost:
            if self._needed:
                position = self._take_payload(data, position, frames)
                continue
            end = data.find(b"\n", position)
            stop = len(data) if end < 0 else end + 1
            # The whole of data when it holds no newline: no copy, and a long line
            # is assembled by the line decoder as before.
            piece = data if position == 0 and stop == len(data) else data[position:stop]
            position = stop
            for line in self._lines.feed(piece):
                self._start(line, frames)
        return frames

    @property
    def pending(self) -> int:
        """Bytes held of an unfinished line or payload."""
        return self._lines.pending or sum(map(len, self._pieces))

    def _start(self, line: bytes | LineTooLong, frames: list[Frame]) -> None:
        head = line.head if isinstance(line, LineTooLong) else line
        try:
            announced = split_prefix(head)
        except BadPrefix as exc:
            self._lost = True
            frames.append(FramingLost(str(exc)))
            return
        if announced is None:
            frames.append(line)
            return
        size, rest = announced
        if isinstance(line, LineTooLong):
            # The line was dropped, its payload must be too; the line is reported now.
            frames.append(LineTooLong(line.size, rest))
            self._header = LineTooLong(line.size, rest)
        else:
            self._header = rest
        self._size = size
        self._needed = size
        if not size:
            self._finish(frames)

    def _take_payload(self, data: bytes, position: int, frames: list[Frame]) -> int:
        take = min(self._needed, len(data) - position)
        if self._keeps_payload():
            whole = position == 0 and take == len(data)
            self._pieces.append(data if whole else data[position : position + take])
        self._needed -= take
        if not self._needed:
            self._finish(frames)
        return position + take

    def _keeps_payload(self) -> bool:
        return self._size <= self._max_payload and isinstance(self._header, bytes)

    def _finish(self, frames: list[Frame]) -> None:
        header = self._header
        if isinstance(header, bytes):
            if self._size > self._max_payload:
                frames.append(PayloadTooLarge(self._size, header))
            else:
                frames.append(WithPayload(header, b"".join(self._pieces)))
        self._pieces.clear()
        self._header = b""
        self._size = 0
