"""The workspace: a backend's directory of user files, read and changed from outside.

Every path is walked from the workspace's root one component at a time through
directory file descriptors opened with ``O_NOFOLLOW``: a symlink anywhere on the way, or
swapped in by user code while a request runs, is refused, never followed. ``..`` is
refused outright. Device files, FIFOs and sockets are listed but never opened. Methods
block on the disk: servers call them through ``asyncio.to_thread``.
"""

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from beephost_core.fs_errors import os_errors_typed
from beephost_core.paths import (
    DIR_FLAGS,
    UPLOAD_PREFIX,
    file_info,
    join,
    kind,
    move_file,
)
from beephost_core.transfers import FileReader as FileReader
from beephost_core.transfers import Upload as Upload
from beephost_protocol.errors import (
    BeepHostError,
    Conflict,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
)
from beephost_protocol.files import (
    FileInfo,
    FileListing,
    FileRemoved,
    WorkspaceDescription,
)


class _Place:
    """An open parent directory and the last component's name in it."""

    def __init__(self, dir_fd: int, name: str | None, parts: list[str]) -> None:
        self.dir_fd = dir_fd
        self.name = name  # None: the workspace itself
        self.parts = parts
        self.relative = join(parts)

    def stat(self) -> os.stat_result:
        if self.name is None:
            return os.fstat(self.dir_fd)
        try:
            return os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise NotFound(f"{self.relative}: no such file or directory") from None


class Workspace:
    """A directory whose files clients may read and change, confined to it.

    Args:
        root: The directory (created if missing).
        quota: The most bytes its regular files may hold together; 0: no limit.
    """

    def __init__(self, root: str | Path, quota: int) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self.quota = quota
        self._reserved = 0  # bytes written by uploads still open
        self._lock = threading.Lock()
        self._remove_stale_uploads()

    def _remove_stale_uploads(self) -> None:
        # Left by a server that died mid-upload: no upload of this one is open yet.
        for _, _, files, dir_fd in os.fwalk(self.root):
            for name in files:
                if name.startswith(UPLOAD_PREFIX):
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=dir_fd)

    # -- paths -----------------------------------------------------------------------

    def parts(self, path: str) -> list[str]:
        """The components of ``path`` under the root.

        Raises:
            InvalidRequest: Empty, outside the workspace, or holding ``..``.
        """
        if not path or "\x00" in path:
            raise InvalidRequest("a path must be a non-empty string without NUL")
        if path.startswith("/"):
            root = str(self.root)
            if path.rstrip("/") != root and not path.startswith(root + "/"):
                raise InvalidRequest(
                    f"{path}: outside the workspace ({root})", {"path": path}
                )
            path = path[len(root) :]
        parts = [part for part in path.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise InvalidRequest(f"{path}: '..' is not allowed", {"path": path})
        return parts

    @contextlib.contextmanager
    def _place(self, path: str, *, create_parents: bool = False) -> Iterator[_Place]:
        """Open ``path``'s parent directory, walking without following symlinks."""
        parts = self.parts(path)
        fd = os.open(self.root, DIR_FLAGS)
        try:
            for index, part in enumerate(parts[:-1]):
                child = self._enter(fd, part, parts[: index + 1], create_parents)
                os.close(fd)
                fd = child
            yield _Place(fd, parts[-1] if parts else None, parts)
        finally:
            os.close(fd)

    def _enter(self, fd: int, name: str, parts: list[str], create: bool) -> int:
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=fd)
        try:
            child = os.open(name, DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            raise NotFound(f"{join(parts)}: no such directory") from None
        except (NotADirectoryError, OSError) as exc:
            if isinstance(exc, NotADirectoryError) or exc.errno == errno.ELOOP:
                raise self._not_a_directory(fd, name, parts) from None
            raise
        return child

    @staticmethod
    def _not_a_directory(fd: int, name: str, parts: list[str]) -> InvalidRequest:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        what = (
            "a symlink (never followed)"
            if stat.S_ISLNK(st.st_mode)
            else "not a directory"
        )
        return InvalidRequest(f"{join(parts)}: {what}", {"path": join(parts)})

    # -- metadata ----------------------------------------------------------------------

    @os_errors_typed
    def stat(self, path: str) -> FileInfo:
        with self._place(path) as place:
            return file_info(place.relative, place.stat())

    @os_errors_typed
    def list(self, path: str = ".") -> FileListing:
        with self._place(path) as place:
            fd = self._open_dir(place)
            try:
                with os.scandir(fd) as entries:
                    found = [
                        file_info(
                            join([*place.parts, entry.name]),
                            entry.stat(follow_symlinks=False),
                        )
                        for entry in entries
                        if not entry.name.startswith(UPLOAD_PREFIX)
                    ]
            finally:
                os.close(fd)
        found.sort(key=lambda info: info.name)
        return FileListing(path=place.relative, entries=found)

    def _open_dir(self, place: _Place) -> int:
        if place.name is None:
            return os.dup(place.dir_fd)
        info = place.stat()
        if not stat.S_ISDIR(info.st_mode):
            raise InvalidRequest(
                f"{place.relative}: {kind(info.st_mode)}, not a directory",
                {"path": place.relative},
            )
        return os.open(place.name, DIR_FLAGS, dir_fd=place.dir_fd)

    @os_errors_typed
    def mkdir(self, path: str, *, parents: bool = True) -> FileInfo:
        with self._place(path, create_parents=parents) as place:
            if place.name is None:
                return file_info(".", place.stat())
            try:
                os.mkdir(place.name, 0o755, dir_fd=place.dir_fd)
            except FileExistsError:
                existing = place.stat()
                if not stat.S_ISDIR(existing.st_mode):
                    raise Conflict(
                        f"{place.relative}: exists and is a {kind(existing.st_mode)}",
                        {"path": place.relative},
                    ) from None
            return file_info(place.relative, place.stat())

    @os_errors_typed
    def remove(self, path: str, *, recursive: bool = False) -> FileRemoved:
        with self._place(path) as place:
            if place.name is None:
                raise InvalidRequest("the workspace itself cannot be removed")
            info = place.stat()
            if not stat.S_ISDIR(info.st_mode):
                os.unlink(place.name, dir_fd=place.dir_fd)
                return FileRemoved(path=place.relative, removed=1)
            if not recursive:
                not_empty = Conflict(
                    f"{place.relative}: directory not empty (remove it recursively)",
                    {"path": place.relative},
                )
                with _errno_means(errno.ENOTEMPTY, not_empty):
                    os.rmdir(place.name, dir_fd=place.dir_fd)
                return FileRemoved(path=place.relative, removed=1)
            removed = _remove_tree(place.dir_fd, place.name)
            return FileRemoved(path=place.relative, removed=removed)

    @os_errors_typed
    def rename(
        self, source: str, destination: str, *, overwrite: bool = False
    ) -> FileInfo:
        with self._place(source) as src, self._place(destination) as dst:
            if src.name is None or dst.name is None:
                raise InvalidRequest("the workspace itself cannot be moved or replaced")
            moving = src.stat()
            if stat.S_ISDIR(moving.st_mode) and dst.relative.startswith(
                src.relative + "/"
            ):
                raise InvalidRequest(
                    f"cannot move {src.relative} into itself", {"path": dst.relative}
                )
            _move(src, dst, overwrite=overwrite, is_dir=stat.S_ISDIR(moving.st_mode))
            return file_info(dst.relative, dst.stat())

    @os_errors_typed
    def usage(self) -> WorkspaceDescription:
        return WorkspaceDescription(
            root=str(self.root), used=self.used(), quota=self.quota
        )

    def used(self) -> int:
        """Bytes of the workspace's regular files (uploads in progress not included)."""
        total = 0
        for _, _, files, dir_fd in os.fwalk(self.root):
            for name in files:
                if name.startswith(UPLOAD_PREFIX):
                    continue  # counted as reserved while it is written
                with contextlib.suppress(OSError):  # gone meanwhile
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode):
                        total += st.st_size
        return total

    # -- content -----------------------------------------------------------------------

    @os_errors_typed
    def open_reader(self, path: str) -> FileReader:
        with self._place(path) as place:
            if place.name is None:
                raise InvalidRequest(". is a directory, not a file", {"path": "."})
            symlink = InvalidRequest(
                f"{place.relative}: a symlink (never followed)",
                {"path": place.relative},
            )
            try:
                with _errno_means(errno.ELOOP, symlink):
                    # O_NONBLOCK: opening a FIFO must not wait for a writer.
                    fd = os.open(
                        place.name,
                        os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                        dir_fd=place.dir_fd,
                    )
            except FileNotFoundError:
                raise NotFound(f"{place.relative}: no such file") from None
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                raise InvalidRequest(
                    f"{place.relative}: {kind(st.st_mode)}, not a regular file",
                    {"path": place.relative},
                )
            return FileReader(fd, place.relative, st)

    @os_errors_typed
    def begin_upload(
        self, path: str, *, overwrite: bool = True, size: int | None = None
    ) -> Upload:
        used = self.used() if self.quota else 0
        if self.quota and size is not None and used + size > self.quota:
            raise self._over_quota(used, size)
        with self._place(path, create_parents=True) as place:
            if place.name is None:
                raise InvalidRequest(". is a directory, not a file", {"path": "."})
            if place.name.startswith(UPLOAD_PREFIX):
                raise InvalidRequest(
                    f"{place.relative}: names starting {UPLOAD_PREFIX} are reserved"
                )
            replaces = False
            with contextlib.suppress(NotFound):
                existing = place.stat()
                replaces = True
                if stat.S_ISDIR(existing.st_mode):
                    raise InvalidRequest(
                        f"{place.relative}: a directory", {"path": place.relative}
                    )
                if not overwrite:
                    raise Conflict(
                        f"{place.relative}: exists", {"path": place.relative}
                    )
            dir_fd = os.dup(place.dir_fd)
            upload = Upload(self, dir_fd, place.name, place.relative, overwrite, used)
            upload.replaces = replaces
            return upload

    def _over_quota(self, used: int, adding: int) -> QuotaExceeded:
        return QuotaExceeded(
            f"the workspace holds {used} bytes; {adding} more would pass its "
            f"{self.quota}-byte quota",
            {"limit": self.quota, "used": used},
        )

    def _reserve(self, used_before: int, adding: int) -> None:
        with self._lock:
            if self.quota and used_before + self._reserved + adding > self.quota:
                raise self._over_quota(used_before + self._reserved, adding)
            self._reserved += adding

    def _release(self, amount: int) -> None:
        with self._lock:
            self._reserved -= amount


def _move(src: _Place, dst: _Place, *, overwrite: bool, is_dir: bool) -> None:
    assert src.name is not None
    assert dst.name is not None
    try:
        if is_dir and not overwrite:
            # No renameat2(RENAME_NOREPLACE) in the stdlib: a directory is checked first.
            with contextlib.suppress(NotFound):
                dst.stat()
                raise Conflict(f"{dst.relative}: exists", {"path": dst.relative})
            os.rename(src.name, dst.name, src_dir_fd=src.dir_fd, dst_dir_fd=dst.dir_fd)
        else:
            move_file(src.dir_fd, src.name, dst.dir_fd, dst.name, replace=overwrite)
    except FileExistsError:
        raise Conflict(f"{dst.relative}: exists", {"path": dst.relative}) from None
    except IsADirectoryError:
        raise Conflict(
            f"{dst.relative}: a directory cannot be replaced by a file",
            {"path": dst.relative},
        ) from None
    except NotADirectoryError:
        raise Conflict(
            f"{dst.relative}: a file cannot be replaced by a directory",
            {"path": dst.relative},
        ) from None
    except OSError as exc:
        if exc.errno == errno.ENOTEMPTY:
            raise Conflict(
                f"{dst.relative}: a directory that is not empty",
                {"path": dst.relative},
            ) from None
        raise


@contextlib.contextmanager
def _errno_means(code: int, error: BeepHostError) -> Iterator[None]:
    """An OSError of ``code`` in the block is ``error`` (what it means for the path
    asked about); any other OSError is left to ``os_errors_typed``."""
    try:
        yield
    except OSError as exc:
        if exc.errno != code:
            raise
        raise error from None


def _remove_tree(parent_fd: int, name: str) -> int:
    """Remove a directory and its contents without following symlinks; count entries."""
    removed = 0
    fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    try:
        with os.scandir(fd) as entries:
            children = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
        for child, is_dir in children:
            if is_dir:
                removed += _remove_tree(fd, child)
            else:
                os.unlink(child, dir_fd=fd)
                removed += 1
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)
    return removed + 1
