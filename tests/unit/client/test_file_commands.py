"""The sans-I/O range reader both twins of ``download`` drive over ``file.read``."""

from typing import Any

from beephost_client._transports import _file_commands as fc
from beephost_protocol import files


def _reply(command: files.FileRead, content: bytes) -> dict[str, Any]:
    """What the server answers ``command`` with for a file holding ``content``."""
    data = content[command.offset : command.offset + command.length]
    end = command.offset + len(data)
    return {
        "path": command.path,
        "offset": command.offset,
        "data": data,
        "size": len(content),
        "eof": end >= len(content),
    }


def _download(content: bytes, offset: int, length: int | None) -> list[bytes]:
    ranges = fc.Ranges("f.bin", offset, length)
    got = []
    while (command := ranges.next()) is not None:
        if data := ranges.take(_reply(command, content)):
            got.append(data)
    return got


def test_reads_to_the_end_in_chunks() -> None:
    step = files.MAX_CHUNK_BYTES
    content = bytes(range(256)) * (step // 128 + 1)
    got = _download(content, 0, None)
    assert b"".join(got) == content
    assert [len(chunk) for chunk in got[:-1]] == [step] * (len(got) - 1)


def test_reads_only_the_range_asked_for() -> None:
    assert b"".join(_download(b"0123456789", 2, 5)) == b"23456"
    assert _download(b"0123456789", 2, 0) == []


def test_an_empty_reply_ends_the_download() -> None:
    assert _download(b"abc", 10, None) == []
    assert _download(b"", 0, 100) == []
