"""The backend's workspace from the client: ``client.files``, for asyncio code.

This file is the source of ``beephost_client/_sync/_files.py``, which
``packages/client/scripts/unasync.py`` generates from it. Transfers stream in chunks of
1 MiB both ways: neither a local file nor a remote one is ever held whole in memory,
except by :meth:`AsyncFiles.read`, which returns the bytes.
"""

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from beephost_client._exceptions import InvalidArgument
from beephost_client._models import parse
from beephost_client._timeout import Timeout
from beephost_client._transports._file_commands import Upload, checked_path
from beephost_client._transports.base import AsyncBaseTransport
from beephost_protocol import Command, files
from beephost_protocol.errors import Conflict, NotFound


class _AsyncFilesOwner(Protocol):
    """What AsyncFiles uses of its AsyncClient.

    A Protocol, so that this module need not import ``_client``, which builds an
    AsyncFiles: the two modules would import each other.
    """

    @property
    def _transport(self) -> AsyncBaseTransport: ...

    @property
    def timeout(self) -> Timeout: ...

    def _check_open(self) -> None: ...

    def _wait(self, deadline: float) -> float: ...

    async def _request(self, command: Command, deadline: float) -> dict[str, Any]: ...


#: Called as bytes move: how many so far, and the total when it is known.
Progress = Callable[[int, int | None], object]
Source = bytes | str | os.PathLike[str] | BinaryIO
#: Where a download goes: a local path (a str or any ``os.PathLike``) or a binary file.
Destination = str | os.PathLike[str] | BinaryIO
CHUNK = files.MAX_CHUNK_BYTES
#: How many times ``download`` to a local path reads a file that changes meanwhile.
DOWNLOAD_TRIES = 3
#: ``Conflict.data["reason"]`` of a read the file changed under (as the server says).
FILE_CHANGED = "file_changed"


class AsyncFiles:
    """The files of the backend's workspace: its user code's working directory.

    Paths are relative to the workspace (or absolute under it); the server refuses
    any that leads out of it (``..``, a symlink) with ``InvalidRequest``.

    Example::

        await client.files.write("data/in.csv", Path("local.csv"))
        result = await client.execute("import pandas; pandas.read_csv('data/in.csv')")
        await client.files.download("out/report.html", Path("report.html"))
    """

    def __init__(self, client: _AsyncFilesOwner) -> None:
        self._client = client

    def _wait(self) -> float:
        client = self._client
        client._check_open()
        return client._wait(client.timeout.request)

    async def write(
        self,
        path: str,
        data: Source,
        *,
        overwrite: bool = True,
        on_progress: Progress | None = None,
    ) -> files.FileInfo:
        """Write a file of the workspace (missing parent directories are made).

        Args:
            path: Where, in the workspace.
            data: The content: bytes; a str (written as UTF-8); a local file's path
                (``pathlib.Path`` or another ``os.PathLike``), uploaded in chunks; or
                a binary file object, read to its end.
            overwrite: Replace a file already there (else ``Conflict``).
            on_progress: Called with the bytes sent so far and the total.

        Returns:
            The written file's :class:`FileInfo`.

        Raises:
            InvalidRequest: ``path`` leads out of the workspace, or is a directory.
            QuotaExceeded: The workspace's quota would be passed (nothing is written).
            Conflict: A file is there and ``overwrite`` is false.

        Example::

            info = await client.files.write("notes.txt", "hello")
            assert info.size == 5
        """
        path = checked_path(path)
        with _opened(data) as (source, size):
            result = await self._client._transport.upload_async(
                Upload(path, overwrite, size),
                _chunks(source, size, on_progress),
                timeout=self._wait(),
            )
        return parse(files.FileInfo, result)

    def iter_bytes(
        self, path: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """The file's bytes in chunks, from ``offset`` (``length`` of them, or all).

        Example::

            async for chunk in client.files.iter_bytes("big.bin"):
                sink.write(chunk)
        """
        path = checked_path(path)
        if offset < 0 or (length is not None and length < 0):
            raise InvalidArgument("offset and length must be >= 0")
        return self._client._transport.download_async(
            path, offset=offset, length=length, timeout=self._wait()
        )

    async def read(self, path: str) -> bytes:
        """A whole file's bytes (use :meth:`download` or :meth:`iter_bytes` for big
        ones).

        Raises:
            NotFound: No such file.
            InvalidRequest: A directory, a symlink or a device, or out of the workspace.

        Example::

            assert await client.files.read("notes.txt") == b"hello"
        """
        content = bytearray()
        async for chunk in self.iter_bytes(path):
            content += chunk
        return bytes(content)

    async def read_text(self, path: str, encoding: str = "utf-8") -> str:
        """A whole file, decoded.

        Example::

            assert await client.files.read_text("notes.txt") == "hello"
        """
        return (await self.read(path)).decode(encoding)

    async def download(
        self,
        path: str,
        destination: Destination,
        *,
        on_progress: Progress | None = None,
    ) -> files.FileInfo:
        """Copy a file of the workspace to a local path (a str or any
        ``os.PathLike``) or a binary file object.

        A local path is written under a temporary name beside it and renamed when the
        file is whole: a failed download leaves nothing, and never half a file.

        Every byte copied is of one version of the file, the one whose info is
        returned. A file that changes while it is read is read again (into a local
        path: up to 3 times in all); if it keeps changing, ``Conflict`` is raised.

        Returns:
            The remote file's :class:`FileInfo` (the version copied).

        Raises:
            NotFound: No such file.
            Conflict: The file kept changing while it was read (``data["reason"]``
                is ``file_changed``): download it again once it is stable.

        Example::

            await client.files.download("out/report.html", Path("report.html"))
        """
        local = isinstance(destination, str | os.PathLike)
        tries = 0
        while True:
            tries += 1
            info = await self.stat(path)
            try:
                if not isinstance(destination, str | os.PathLike):
                    await self._copy(path, destination, info.size, on_progress)
                else:
                    await self._copy_to(Path(destination), path, info, on_progress)
                return info
            except Conflict as exc:
                again = local and tries < DOWNLOAD_TRIES
                if not again or exc.data.get("reason") != FILE_CHANGED:
                    raise

    async def _copy_to(
        self,
        target: Path,
        path: str,
        info: files.FileInfo,
        on_progress: Progress | None,
    ) -> None:
        partial = target.with_name(f".{target.name}.part-{secrets.token_hex(4)}")
        try:
            with partial.open("wb") as sink:
                await self._copy(path, sink, info.size, on_progress)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)

    async def _copy(
        self, path: str, sink: BinaryIO, size: int, on_progress: Progress | None
    ) -> None:
        done = 0
        async for chunk in self.iter_bytes(path):
            sink.write(chunk)
            done += len(chunk)
            if on_progress is not None:
                on_progress(done, size)
        if done != size:  # another version than the one stat described
            raise Conflict(
                f"{path}: the file changed while it was read ({done} bytes, not "
                f"{size}): download it again once it is stable",
                {"path": path, "reason": FILE_CHANGED},
            )

    async def list(self, path: str = ".") -> list[files.FileInfo]:
        """A directory's entries, sorted by name.

        Example::

            names = [info.name for info in await client.files.list()]
        """
        command = files.FileList(path=checked_path(path))
        return parse(files.FileListing, await self._run(command)).entries

    async def stat(self, path: str) -> files.FileInfo:
        """One path's :class:`FileInfo` (a symlink is described, not followed).

        Example::

            assert (await client.files.stat("data")).type == "directory"
        """
        return parse(
            files.FileInfo, await self._run(files.FileStat(path=checked_path(path)))
        )

    async def exists(self, path: str) -> bool:
        """Whether ``path`` names anything in the workspace.

        Example::

            assert not await client.files.exists("nothing/here")
        """
        try:
            await self.stat(path)
        except NotFound:
            return False
        return True

    async def remove(self, path: str, *, recursive: bool = False) -> int:
        """Remove a file, a symlink (not its target) or a directory (a directory that
        is not empty needs ``recursive``); returns how many entries went.

        Raises:
            NotFound: Nothing there.
            Conflict: A directory that is not empty, without ``recursive``.

        Example::

            await client.files.remove("data", recursive=True)
        """
        command = files.FileRemove(path=checked_path(path), recursive=recursive)
        return parse(files.FileRemoved, await self._run(command)).removed

    async def mkdir(self, path: str, *, parents: bool = True) -> files.FileInfo:
        """Make a directory (with its missing parents unless ``parents`` is false).

        Example::

            await client.files.mkdir("out/plots")
        """
        command = files.FileMkdir(path=checked_path(path), parents=parents)
        return parse(files.FileInfo, await self._run(command))

    async def rename(
        self, source: str, destination: str, *, overwrite: bool = False
    ) -> files.FileInfo:
        """Move a file or directory within the workspace.

        Raises:
            Conflict: The destination is taken and ``overwrite`` is false.

        Example::

            await client.files.rename("draft.txt", "final.txt")
        """
        command = files.FileRename(
            source=checked_path(source, "source"),
            destination=checked_path(destination, "destination"),
            overwrite=overwrite,
        )
        return parse(files.FileInfo, await self._run(command))

    async def usage(self) -> files.WorkspaceDescription:
        """The workspace's path (as user code sees it), bytes used and quota.

        Example::

            usage = await client.files.usage()
            print(usage.root, usage.used, usage.quota)
        """
        return parse(
            files.WorkspaceDescription, await self._run(files.WorkspaceUsage())
        )

    async def _run(self, command: Command) -> dict[str, Any]:
        return await self._client._request(command, self._client.timeout.request)


@contextlib.contextmanager
def _opened(data: Source) -> Any:
    """``data`` as a binary stream and its size (None when unknown)."""
    if isinstance(data, str):
        data = data.encode()
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data), len(data)
        return
    if isinstance(data, os.PathLike):
        with Path(data).open("rb") as stream:
            yield stream, os.fstat(stream.fileno()).st_size
        return
    if hasattr(data, "read"):
        yield data, None
        return
    raise InvalidArgument(
        f"data must be bytes, str, a path or a binary file, not {type(data).__name__}"
    )


async def _chunks(
    source: bytes | BinaryIO, size: int | None, on_progress: Progress | None
) -> AsyncIterator[bytes]:
    done = 0
    while True:
        if isinstance(source, bytes):
            chunk = source[done : done + CHUNK]
        else:
            chunk = source.read(CHUNK)
        if not isinstance(chunk, bytes):
            raise InvalidArgument("the file object must be opened in binary mode")
        if not chunk:
            return
        done += len(chunk)
        yield chunk
        if on_progress is not None:
            on_progress(done, size)
