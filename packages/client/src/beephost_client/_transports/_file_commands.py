"""Moving a file with the file commands (``file.upload.*``, ``file.read``), sans-I/O.

The transports' default ``upload`` and ``download`` (base.py) drive these: the pipe,
and any transport whose ``handle`` serves every file command. HTTP and gRPC stream
instead, over their own wire.
"""

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from beephost_client._exceptions import InvalidArgument
from beephost_client._models import parse
from beephost_protocol import files

_PATH = TypeAdapter(files.WorkspacePath)


def checked_path(path: object, name: str = "path") -> str:
    """``path`` if the protocol takes it, else InvalidArgument (never pydantic's
    ValidationError): checked here, before anything is sent, so that every transport
    refuses an empty, NUL-holding or too long path the same way."""
    try:
        return _PATH.validate_python(path)
    except ValidationError as exc:
        raise InvalidArgument(
            f"{name} must be a non-empty str of at most {files.MAX_PATH_CHARS} "
            f"characters, without NUL, not {_shown(path)}"
        ) from exc


def _shown(path: object) -> str:
    if isinstance(path, str) and len(path) > 40:
        return f"a str of {len(path)} characters"
    return repr(path)


@dataclass(frozen=True, slots=True)
class Upload:
    """A file of the workspace to write: what every transport's ``upload`` takes
    beside the chunks, built once by ``files.write``."""

    path: str
    """Where, in the workspace."""
    overwrite: bool
    """Replace a file already there (else the server refuses with ``Conflict``)."""
    size: int | None
    """The bytes the chunks will hold, or None when unknown until they end."""


def open_upload(file: Upload) -> files.UploadOpen:
    return files.UploadOpen(path=file.path, overwrite=file.overwrite, size=file.size)


def upload_id(opened: Any) -> str:
    return parse(files.UploadOpened, opened).upload


def write(upload: str, offset: int, data: bytes) -> files.UploadWrite:
    return files.UploadWrite(upload=upload, offset=offset, data=data)


def commit(upload: str) -> files.UploadCommit:
    return files.UploadCommit(upload=upload)


def abort(upload: str) -> files.UploadAbort:
    return files.UploadAbort(upload=upload)


def read(
    path: str, offset: int, left: int | None, reader: str | None = None
) -> files.FileRead:
    length = files.MAX_CHUNK_BYTES if left is None else min(left, files.MAX_CHUNK_BYTES)
    # binary: where the transport has binary frames (the pipe), the bytes come raw.
    # hold/reader: the server keeps the file open between the reads, so every chunk
    # is of one version of it (a server that predates them ignores them); the last
    # read of a range holds nothing.
    hold = left is None or left > length
    return files.FileRead(
        path=path, offset=offset, length=length, binary=True, hold=hold, reader=reader
    )


class Ranges:
    """The ``file.read`` commands that download a file from ``offset`` (``length``
    bytes, or to the end), one after another: the state both twins of
    ``download`` would otherwise keep by hand."""

    def __init__(self, path: str, offset: int, length: int | None) -> None:
        self._path = path
        self._offset = offset
        self._left = length
        self._eof = False
        self._reader: str | None = None

    def next(self) -> files.FileRead | None:
        """The next read to send, or None once the range is read."""
        if self._eof or (self._left is not None and self._left <= 0):
            return None
        return read(self._path, self._offset, self._left, self._reader)

    def take(self, reply: Any) -> bytes:
        """The bytes of the last read's reply (maybe none), counted as read."""
        got = parse(files.FileChunk, reply)
        self._eof = got.eof or not got.data
        self._reader = got.reader
        self._offset += len(got.data)
        if self._left is not None:
            self._left -= len(got.data)
        return got.data


def pieces(data: bytes) -> list[bytes]:
    """``data`` cut to the largest chunks a write may carry."""
    step = files.MAX_CHUNK_BYTES
    return [data[i : i + step] for i in range(0, len(data), step)] or [b""]
