"""HTTP byte ranges (RFC 9110, 14.1): one range of a file, or a refusal (416)."""

import re

from beephost_protocol.errors import InvalidRequest

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class RangeNotSatisfiable(InvalidRequest):
    """A range that selects no byte of the file: answered 416 with its size."""

    def __init__(self, header: str, size: int) -> None:
        super().__init__(
            f"range {header!r} selects nothing of a {size}-byte file",
            {"range": header[:100], "size": size},
        )
        self.size = size


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The ``(start, end)`` (end exclusive) a Range header asks of a ``size``-byte
    file; None for the whole file (no header, or one this server ignores: several
    ranges, another unit).

    Raises:
        RangeNotSatisfiable: The range starts past the end, or is empty.
    """
    if header is None:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None  # RFC 9110: a Range the server does not support is ignored
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise RangeNotSatisfiable(header, size)
        return max(0, size - count), size
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiable(header, size)
    return start, end
