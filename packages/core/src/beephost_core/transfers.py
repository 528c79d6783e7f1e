"""Moving a file's bytes in and out of the workspace: ranged reads and uploads that
appear whole, under their name, only when committed."""

import asyncio
import contextlib
import errno
import hashlib
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from typing import Self, TypeVar

from beephost_core.fs_errors import os_errors_typed
from beephost_core.paths import UPLOAD_PREFIX, file_info, move_file
from beephost_core.quota import QuotaLedger
from beephost_protocol.errors import Conflict, InvalidRequest, QuotaExceeded
from beephost_protocol.files import FileInfo


class _Releasing:
    """A ``with`` block hands the object back and releases its descriptors however the
    block ends (both transfers hold an fd that must not outlive the request)."""

    def _release_on_exit(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release_on_exit()


T = TypeVar("T")

#: How many times a download's first read starts over on a file that changes under it.
READ_TRIES = 3
#: Buffers per ``writev`` (Linux's IOV_MAX is 1024).
_IOV_MAX = 1024
#: Bytes per read when a committed upload is hashed.
_HASH_READ = 1 << 20


def _changed(before: os.stat_result, after: os.stat_result) -> bool:
    """Whether the content of an open file may have changed between two ``fstat``:
    a write moves its size or its timestamps. Renaming another file over its name
    unlinks it, which moves its ctime but not its bytes: a change of link count
    leaves ctime out."""
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        return True
    relinked = before.st_nlink != after.st_nlink
    return not relinked and before.st_ctime_ns != after.st_ctime_ns


class FileChanged(Conflict):
    """A read the file changed under (``conflict`` on the wire, ``data.reason``
    ``file_changed``); ``tries``: how many times it started over."""

    def __init__(self, tries: int | None = None) -> None:
        after = f" ({tries} tries)" if tries else ""
        super().__init__(
            f"the file changed while it was read{after}: "
            "download it again once it is stable",
            {"reason": "file_changed"},
        )


class FileReader(_Releasing):
    """An open regular file of the workspace, read by ranges.

    Every range comes from the one descriptor opened: a file renamed over the name
    meanwhile is not seen (the old inode stays readable). A file written in place is:
    each read checks that the file's size and timestamps are still those it had when
    opened, so the bytes handed out are all of one version, of ``size`` bytes.
    """

    def __init__(self, fd: int, relative: str, st: os.stat_result) -> None:
        self._fd = fd
        self._opened = st
        self.info = file_info(relative, st)
        self.size = st.st_size

    @os_errors_typed
    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``.

        Raises:
            FileChanged: The file was written since it was opened.
        """
        data = os.pread(self._fd, length, offset) if length else b""
        if _changed(self._opened, os.fstat(self._fd)):
            raise FileChanged()
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    _release_on_exit = close


def first_read(
    open_reader: Callable[[], FileReader], first: Callable[[FileReader], T]
) -> tuple[FileReader, T]:
    """Open a file and run ``first`` on it (its first read, before anything was sent),
    starting over while the file changes under it, up to :data:`READ_TRIES` times.

    Returns the open reader (the caller closes it) and what ``first`` returned.

    Raises:
        FileChanged: The file kept changing.
    """
    for _ in range(READ_TRIES):
        reader = open_reader()
        try:
            return reader, first(reader)
        except FileChanged:
            reader.close()
    raise FileChanged(READ_TRIES)


class Upload(_Releasing):
    """A file being written under a temporary name; it appears whole at ``commit``.

    Its bytes are hashed only when ``commit`` is given a SHA-256 to check (most
    uploads are not: 20 ms of CPU per 16 MiB saved), from the file itself. A lock
    makes ``abort`` wait for a write under way in another thread, so the descriptor
    is never closed under it (a server may write one chunk while receiving the next).
    """

    def __init__(
        self,
        workspace: QuotaLedger,
        dir_fd: int,
        name: str,
        relative: str,
        overwrite: bool,
        used_before: int,
    ) -> None:
        self.path = relative
        self.received = 0
        #: Whether a file was at ``path`` when the upload began (it is replaced).
        self.replaces = False
        self._workspace = workspace
        self._dir_fd = dir_fd
        self._name = name
        self._overwrite = overwrite
        self._used_before = used_before
        self._temp = UPLOAD_PREFIX + secrets.token_hex(8)
        self._lock = threading.Lock()
        # Read and write: a digest asked for at commit is read back from this inode.
        self._fd = os.open(
            self._temp,
            os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
            dir_fd=dir_fd,
        )
        self._done = False

    def write(self, data: bytes) -> int:
        """Append ``data``; returns the bytes received so far.

        Raises:
            QuotaExceeded: The workspace would pass its quota (the upload is aborted).
        """
        return self.write_all((data,))

    @os_errors_typed
    def write_all(self, pieces: Sequence[bytes]) -> int:
        """Append ``pieces`` in order, with no copy of them (``writev``); returns the
        bytes received so far.

        Raises:
            QuotaExceeded: The workspace would pass its quota (the upload is aborted).
        """
        size = sum(len(piece) for piece in pieces)
        with self._lock:
            if self._done:
                raise InvalidRequest(f"the upload of {self.path} is finished")
            try:
                self._workspace._reserve(self._used_before, size)
            except QuotaExceeded:
                self._abort()
                raise
            self.received += size
            try:
                _write_all(self._fd, pieces)
            except OSError as exc:
                self._abort()
                if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    raise QuotaExceeded(
                        f"the disk refused {self.path}: {exc.strerror}",
                        {"limit": self._workspace.quota, "used": self._used_before},
                    ) from None
                raise
            return self.received

    @os_errors_typed
    def commit(self, sha256: str | None = None) -> FileInfo:
        """Put the file in place under its name.

        Raises:
            InvalidRequest: ``sha256`` does not match what was received (aborted).
            Conflict: The name was taken meanwhile and ``overwrite`` is false.
        """
        with self._lock:
            return self._commit(sha256)

    def _commit(self, sha256: str | None) -> FileInfo:
        if self._done:
            raise InvalidRequest(f"the upload of {self.path} is finished")
        if sha256 is not None and sha256.lower() != _digest_of(self._fd):
            self._abort()
            raise InvalidRequest(
                f"{self.path}: the SHA-256 of the {self.received} bytes received "
                "does not match; nothing was written",
                {"path": self.path, "received": self.received},
            )
        os.close(self._fd)
        self._fd = -1
        try:
            move_file(
                self._dir_fd,
                self._temp,
                self._dir_fd,
                self._name,
                replace=self._overwrite,
            )
        except FileExistsError:
            self._abort()
            raise Conflict(f"{self.path}: exists", {"path": self.path}) from None
        except IsADirectoryError:
            self._abort()
            raise InvalidRequest(
                f"{self.path}: a directory", {"path": self.path}
            ) from None
        except BaseException:
            self._abort()
            raise
        info = os.stat(self._name, dir_fd=self._dir_fd, follow_symlinks=False)
        self._finish()
        return file_info(self.path, info)

    def abort(self) -> None:
        """Remove the temporary file; nothing appears under the name (once a write
        under way in another thread has returned)."""
        with self._lock:
            self._abort()

    def _abort(self) -> None:
        if self._done:
            return
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp, dir_fd=self._dir_fd)
        self._finish()

    _release_on_exit = abort  # a block left without commit leaves nothing behind

    def _finish(self) -> None:
        self._done = True
        self._workspace._release(self.received)
        os.close(self._dir_fd)


class WriteBehind:
    """An upload written on a thread one chunk at a time while its caller receives the
    next: a server's socket is never left unread for a disk write. An error of a write
    surfaces at the next ``write`` or at ``flush``."""

    def __init__(self, upload: Upload) -> None:
        self._upload = upload
        self._writing: asyncio.Future[int] | None = None

    async def write(self, pieces: Sequence[bytes]) -> None:
        """Start writing ``pieces`` once the previous chunk is written."""
        await self.flush()
        self._writing = asyncio.ensure_future(
            asyncio.to_thread(self._upload.write_all, pieces)
        )

    async def flush(self) -> None:
        """Wait for the chunk under way (its error, if it failed)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    def forget(self) -> None:
        """Leave a chunk under way to finish on its thread (``Upload.abort`` waits
        for it) and its outcome untold: the block is left with an error already."""
        writing, self._writing = self._writing, None
        if writing is None:
            return
        if not writing.done():
            writing.cancel()
        elif not writing.cancelled():
            writing.exception()  # retrieved: the error already leaving is the one told


def _write_all(fd: int, pieces: Sequence[bytes]) -> None:
    """Write every byte of ``pieces`` to ``fd``, in order, resuming short writes."""
    views = [memoryview(piece) for piece in pieces if piece]
    first = 0
    while first < len(views):
        written = os.writev(fd, views[first : first + _IOV_MAX])
        while written:
            head = views[first]
            if written < len(head):
                views[first] = head[written:]
                break
            written -= len(head)
            first += 1


def _digest_of(fd: int) -> str:
    """The SHA-256 of the whole file open on ``fd``."""
    digest = hashlib.sha256()
    offset = 0
    while data := os.pread(fd, _HASH_READ, offset):
        digest.update(data)
        offset += len(data)
    return digest.hexdigest()
