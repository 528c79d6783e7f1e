"""The workspace's file commands and their results (pipe.md §12, "Files").

Every backend has a workspace: the directory its user code starts in. These commands
read and change it from outside, on every transport. Paths are relative to the
workspace (or absolute under it) and never leave it. Whole files travel in chunks of
at most ``MAX_CHUNK_BYTES``: an upload is opened, written chunk by chunk and committed
(the file appears under its name only then); a download reads ranges.
"""

import base64
import binascii
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    StrictBool,
    WithJsonSchema,
)

from beephost_protocol._base import Command, _Model

#: The most bytes one ``file.read`` returns or one ``file.upload.write`` carries.
MAX_CHUNK_BYTES = 1 << 20
#: The longest path a command may name, in characters (Linux's PATH_MAX).
MAX_PATH_CHARS = 4096


def _no_nul(path: str) -> str:
    if "\x00" in path:
        raise ValueError("a path cannot hold a NUL character")
    return path


def _from_base64(value: Any) -> bytes:
    if isinstance(value, bytes):  # built in Python: already the bytes
        return value
    if not isinstance(value, str):
        raise ValueError("must be base64 text")  # pydantic wants ValueError
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64 (RFC 4648, with padding)") from None


def _to_base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


WorkspacePath = Annotated[
    str,
    BeforeValidator(lambda v: _no_nul(v) if isinstance(v, str) else v),
    Field(
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="A path in the workspace: relative to it ('data/in.csv', '.' is "
        "the workspace), or absolute under it. Never leaves it.",
    ),
]

#: Bytes on the wire as base64 text (RFC 4648 with padding).
Base64Bytes = Annotated[
    bytes,
    BeforeValidator(_from_base64),
    PlainSerializer(_to_base64, return_type=str),
    WithJsonSchema({"type": "string", "contentEncoding": "base64"}),
]

FileType = Literal["file", "directory", "symlink", "other"]
# Flags are JSON booleans: 0 or "yes" is a mistake to report, not a value to guess at.
_UPLOAD_DOC = "The upload's id, from file.upload.open."


# -- commands ------------------------------------------------------------------------


class FileStat(Command):
    """Describe one path (a symlink is described, never followed)."""

    COMMAND: ClassVar[str] = "file.stat"
    path: WorkspacePath


class FileList(Command):
    """List a directory's entries, sorted by name."""

    COMMAND: ClassVar[str] = "file.list"
    path: WorkspacePath = "."


class FileMkdir(Command):
    """Create a directory (and its missing parents unless ``parents`` is false)."""

    COMMAND: ClassVar[str] = "file.mkdir"
    path: WorkspacePath
    parents: StrictBool = Field(True, description="Create missing parents too.")


class FileRemove(Command):
    """Remove a file, a symlink (not its target) or a directory."""

    COMMAND: ClassVar[str] = "file.remove"
    path: WorkspacePath
    recursive: StrictBool = Field(
        False, description="Remove a directory that is not empty, with its contents."
    )


class FileRename(Command):
    """Move ``source`` to ``destination``, both in the workspace."""

    COMMAND: ClassVar[str] = "file.rename"
    source: WorkspacePath
    destination: WorkspacePath
    overwrite: StrictBool = Field(
        False, description="Replace an existing file at the destination."
    )


class FileRead(Command):
    """Read up to ``length`` bytes of a regular file from ``offset``."""

    COMMAND: ClassVar[str] = "file.read"
    path: WorkspacePath
    offset: int = Field(0, ge=0, description="Where to start, in bytes.")
    length: int = Field(
        MAX_CHUNK_BYTES,
        ge=1,
        le=MAX_CHUNK_BYTES,
        description="The most bytes to return.",
    )
    binary: StrictBool = Field(
        False,
        description="Send the bytes read as the reply's binary payload (pipe.md §4, "
        "'Binary frames') instead of base64 in 'data'.",
    )
    hold: StrictBool = Field(
        False,
        description="Keep the file open for the next reads of this download: the "
        "reply names it in 'reader' (unless it reached the end).",
    )
    reader: str | None = Field(
        None,
        max_length=64,
        description="Continue a held read (a 'reader' from an earlier reply): the "
        "bytes come from the file as it was first opened, never from a newer one.",
    )


class UploadOpen(Command):
    """Start writing a file: its bytes go to a temporary name until the commit."""

    COMMAND: ClassVar[str] = "file.upload.open"
    path: WorkspacePath
    overwrite: StrictBool = Field(
        True, description="Replace an existing file at ``path``."
    )
    size: int | None = Field(
        None,
        ge=0,
        description="The file's size, if known: checked against the quota now and "
        "against what was written at the commit.",
    )


class UploadWrite(Command):
    """Append one chunk to an open upload."""

    COMMAND: ClassVar[str] = "file.upload.write"
    upload: str = Field(min_length=1, max_length=128, description=_UPLOAD_DOC)
    offset: int = Field(
        ge=0, description="Where the chunk goes: the bytes received so far."
    )
    data: Base64Bytes = Field(
        max_length=MAX_CHUNK_BYTES,
        description=f"At most {MAX_CHUNK_BYTES} bytes, base64; or the frame's binary "
        "payload (pipe.md §4, 'Binary frames').",
    )


class UploadCommit(Command):
    """Finish an upload: the file appears under its name, whole."""

    COMMAND: ClassVar[str] = "file.upload.commit"
    upload: str = Field(min_length=1, max_length=128, description=_UPLOAD_DOC)
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="If given, the file's SHA-256 in hex: a mismatch aborts the upload.",
    )


class UploadAbort(Command):
    """Give up an upload: its temporary file is removed."""

    COMMAND: ClassVar[str] = "file.upload.abort"
    upload: str = Field(min_length=1, max_length=128, description=_UPLOAD_DOC)


class WorkspaceUsage(Command):
    """Where the workspace is, and how much of its quota is used."""

    COMMAND: ClassVar[str] = "file.usage"


FILE_COMMANDS: tuple[type[Command], ...] = (
    FileStat,
    FileList,
    FileMkdir,
    FileRemove,
    FileRename,
    FileRead,
    UploadOpen,
    UploadWrite,
    UploadCommit,
    UploadAbort,
    WorkspaceUsage,
)


# -- results -------------------------------------------------------------------------


class FileInfo(_Model):
    """One path of the workspace: result of file.stat, file.mkdir, file.rename and
    file.upload.commit, and each entry of file.list."""

    path: str = Field(
        description="Relative to the workspace, '/'-separated; '.' is the workspace."
    )
    name: str = Field(description="The last part of the path.")
    type: FileType = Field(
        description="'file', 'directory', 'symlink' (never followed) or 'other' "
        "(a device, FIFO or socket: listed, never read or written)."
    )
    size: int = Field(description="Bytes (a directory's own size, as the OS says).")
    mtime: float = Field(description="Last modification, Unix seconds.")
    mode: int = Field(description="Permission bits, e.g. 420 (0o644).")


class FileListing(_Model):
    """Result of file.list."""

    path: str = Field(description="The directory, relative to the workspace.")
    entries: list[FileInfo] = Field(description="Its entries, sorted by name.")


class FileRemoved(_Model):
    """Result of file.remove."""

    path: str = Field(description="What was removed, relative to the workspace.")
    removed: int = Field(description="Files and directories removed.")


class FileChunk(_Model):
    """Result of file.read."""

    path: str = Field(description="The file, relative to the workspace.")
    offset: int = Field(description="Where ``data`` starts.")
    data: Base64Bytes = Field(
        description="The bytes read, base64; or the frame's binary payload when the "
        "read asked for 'binary'."
    )
    size: int = Field(description="The whole file's size now.")
    eof: StrictBool = Field(description="Whether ``data`` reaches the end of the file.")
    reader: str | None = Field(
        None,
        description="The held read to continue with (asked with 'hold'); None once "
        "at the end, where the file is closed.",
    )


class UploadOpened(_Model):
    """Result of file.upload.open."""

    upload: str = Field(description="The upload's id: pass it to write and commit.")
    path: str = Field(description="Where the file will appear, relative.")
    chunk_bytes: int = Field(description="The most bytes one write may carry.")


class UploadProgress(_Model):
    """Result of file.upload.write."""

    upload: str = Field(description=_UPLOAD_DOC)
    received: int = Field(description="Bytes written so far.")


class UploadAborted(_Model):
    """Result of file.upload.abort."""

    aborted: StrictBool = Field(description="False if no such upload was open.")


class WorkspaceDescription(_Model):
    """Result of file.usage."""

    root: str = Field(
        description="The workspace's absolute path, as user code sees it (its "
        "working directory and HOME)."
    )
    used: int = Field(description="Bytes the workspace's files take.")
    quota: int = Field(description="The most bytes it may hold; 0 means no limit.")


FILE_RESULTS: dict[str, type[_Model]] = {
    "file.stat": FileInfo,
    "file.list": FileListing,
    "file.mkdir": FileInfo,
    "file.remove": FileRemoved,
    "file.rename": FileInfo,
    "file.read": FileChunk,
    "file.upload.open": UploadOpened,
    "file.upload.write": UploadProgress,
    "file.upload.commit": FileInfo,
    "file.upload.abort": UploadAborted,
    "file.usage": WorkspaceDescription,
}
"""The ``result`` model of each file command's successful reply."""
