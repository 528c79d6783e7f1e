"""The file commands, run against the workspace for the Executor.

Metadata commands map one to one onto :class:`~beephost_core.workspace.Workspace`. An
upload made of commands (``file.upload.open``, ``.write``..., ``.commit``) is held here
between them, by id: it belongs to the owner that opened it (a pipe connection) and is
aborted when that owner goes away or after ``idle_timeout`` seconds without a write. A
download made of ``file.read`` commands with ``hold`` is held the same way: its file
stays open between them, so every chunk comes from one version of the file.
Disk work runs on a thread, so a slow disk never stalls the event loop.
"""

import asyncio
import contextlib
import secrets
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from beephost_core.transfers import FileReader, Upload, first_read
from beephost_core.workspace import Workspace
from beephost_protocol import Command, files
from beephost_protocol.errors import InvalidRequest, NotFound

UPLOAD_IDLE_TIMEOUT = 300.0

T = TypeVar("T", Upload, FileReader)


@dataclass(eq=False)
class _Held(Generic[T]):
    """An upload or a read kept between commands, by id, for the owner that began it."""

    item: T
    owner: Hashable | None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_used: float = field(default_factory=time.monotonic)


class FileService:
    """Runs ``file.*`` commands; ``workspace`` is there for transports that stream."""

    def __init__(
        self, workspace: Workspace, idle_timeout: float = UPLOAD_IDLE_TIMEOUT
    ) -> None:
        self.workspace = workspace
        self.idle_timeout = idle_timeout
        self._uploads: dict[str, _Held[Upload]] = {}
        self._reads: dict[str, _Held[FileReader]] = {}

    async def run(self, command: Command, owner: Hashable | None) -> dict[str, Any]:
        """Run one file command; its JSON-ready result, but for a ``binary`` read:
        its ``data`` is then the raw bytes, for the pipe to send as a payload.

        Raises:
            BeepHostError: invalid_request, not_found, conflict or quota_exceeded.
        """
        space = self.workspace
        match command:
            case files.FileStat():
                result: BaseModel = await asyncio.to_thread(space.stat, command.path)
            case files.FileList():
                result = await asyncio.to_thread(space.list, command.path)
            case files.FileMkdir():
                result = await asyncio.to_thread(
                    space.mkdir, command.path, parents=command.parents
                )
            case files.FileRemove():
                result = await asyncio.to_thread(
                    space.remove, command.path, recursive=command.recursive
                )
            case files.FileRename():
                result = await asyncio.to_thread(
                    space.rename,
                    command.source,
                    command.destination,
                    overwrite=command.overwrite,
                )
            case files.FileRead():
                chunk = await self._read(command, owner)
                if command.binary:  # the raw bytes, never encoded (base64: 1.3x them)
                    wire = chunk.model_dump(exclude_none=True, exclude={"data"})
                    return wire | {"data": chunk.data}
                # No "reader" unless held: a reply as before for a read as before.
                return chunk.model_dump(mode="json", exclude_none=True)
            case files.WorkspaceUsage():
                result = await asyncio.to_thread(space.usage)
            case files.UploadOpen():
                result = await self._open(command, owner)
            case files.UploadWrite():
                result = await self._write(command)
            case files.UploadCommit():
                result = await self._commit(command)
            case files.UploadAbort():
                result = await self._abort(command.upload)
            case _:
                raise InvalidRequest(f"unknown file command {command.COMMAND!r}")
        return result.model_dump(mode="json")

    async def _read(
        self, command: files.FileRead, owner: Hashable | None
    ) -> files.FileChunk:
        if command.reader is not None:
            return await self._read_held(command)
        reader, data = await asyncio.to_thread(
            first_read,
            lambda: self.workspace.open_reader(command.path),
            lambda opened: opened.read(command.offset, command.length),
        )
        if not command.hold or _at_end(reader, command.offset, data):
            reader.close()
            return _chunk(reader, command.offset, data)
        read_id = "r-" + secrets.token_hex(8)
        self._reads[read_id] = _Held(reader, owner)
        return _chunk(reader, command.offset, data, read_id)

    async def _read_held(self, command: files.FileRead) -> files.FileChunk:
        read_id = command.reader or ""
        held = self._reads.get(read_id)
        if held is None:
            raise NotFound(
                f"no read {read_id!r} is held (finished or expired): read from the "
                "start again",
                {"reader": read_id},
            )
        async with held.lock:
            held.last_used = time.monotonic()
            try:
                data = await asyncio.to_thread(
                    held.item.read, command.offset, command.length
                )
            except BaseException:
                self._close_read(read_id)  # the file changed: this read is over
                raise
        if _at_end(held.item, command.offset, data):
            self._close_read(read_id)
            return _chunk(held.item, command.offset, data)
        return _chunk(held.item, command.offset, data, read_id)

    def _close_read(self, read_id: str) -> None:
        held = self._reads.pop(read_id, None)
        if held is not None:
            held.item.close()

    # -- uploads made of commands ----------------------------------------------------

    async def _open(
        self, command: files.UploadOpen, owner: Hashable | None
    ) -> files.UploadOpened:
        upload = await asyncio.to_thread(
            self.workspace.begin_upload,
            command.path,
            overwrite=command.overwrite,
            size=command.size,
        )
        upload_id = "u-" + secrets.token_hex(8)
        self._uploads[upload_id] = _Held(upload, owner)
        return files.UploadOpened(
            upload=upload_id, path=upload.path, chunk_bytes=files.MAX_CHUNK_BYTES
        )

    def _get(self, upload_id: str) -> _Held[Upload]:
        held = self._uploads.get(upload_id)
        if held is None:
            raise NotFound(
                f"no upload {upload_id!r} is open (finished, aborted or expired)",
                {"upload": upload_id},
            )
        return held

    async def _write(self, command: files.UploadWrite) -> files.UploadProgress:
        held = self._get(command.upload)
        async with held.lock:
            held.last_used = time.monotonic()
            if command.offset != held.item.received:
                raise InvalidRequest(
                    f"chunk at offset {command.offset}, but {held.item.received} "
                    "bytes were received: send chunks in order",
                    {"upload": command.upload, "received": held.item.received},
                )
            try:
                received = await asyncio.to_thread(held.item.write, command.data)
            except BaseException:
                self._uploads.pop(command.upload, None)  # write() aborted it
                raise
        return files.UploadProgress(upload=command.upload, received=received)

    async def _commit(self, command: files.UploadCommit) -> files.FileInfo:
        held = self._get(command.upload)
        async with held.lock:
            self._uploads.pop(command.upload, None)
            try:
                return await asyncio.to_thread(held.item.commit, command.sha256)
            finally:
                held.item.abort()  # a no-op once committed

    async def _abort(self, upload_id: str) -> files.UploadAborted:
        held = self._uploads.pop(upload_id, None)
        if held is None:
            return files.UploadAborted(aborted=False)
        async with held.lock:
            await asyncio.to_thread(held.item.abort)
        return files.UploadAborted(aborted=True)

    async def release_owned(self, owner: Hashable) -> None:
        """Abort the uploads and close the reads ``owner`` opened (it went away)."""
        for upload_id, held in list(self._uploads.items()):
            if held.owner == owner:
                await self._abort(upload_id)
        for read_id, read in list(self._reads.items()):
            if read.owner == owner and not read.lock.locked():
                self._close_read(read_id)

    async def expire_idle(self) -> None:
        """Abort uploads nobody wrote to, and close held reads nobody read from, for
        ``idle_timeout`` seconds."""
        cutoff = time.monotonic() - self.idle_timeout
        for upload_id, held in list(self._uploads.items()):
            if held.last_used < cutoff and not held.lock.locked():
                await self._abort(upload_id)
        for read_id, read in list(self._reads.items()):
            if read.last_used < cutoff and not read.lock.locked():
                self._close_read(read_id)

    async def aclose(self) -> None:
        for upload_id in list(self._uploads):
            with contextlib.suppress(Exception):
                await self._abort(upload_id)
        for read_id in list(self._reads):
            self._close_read(read_id)


def _at_end(reader: FileReader, offset: int, data: bytes) -> bool:
    return offset + len(data) >= reader.size


def _chunk(
    reader: FileReader, offset: int, data: bytes, read_id: str | None = None
) -> files.FileChunk:
    return files.FileChunk(
        path=reader.info.path,
        offset=offset,
        data=data,
        size=reader.size,
        eof=_at_end(reader, offset, data),
        reader=read_id,
    )
