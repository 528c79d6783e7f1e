"""The transport interface: send one command, get its result dict or a mapped error.

A transport knows its wire and nothing else: the client builds commands, decodes
values, decides retries and tracks remote objects (``beephost_client._base``). A
transport's only jobs are to deliver a :class:`~beephost_protocol.Command`, return the
result object of the reply (wire values, not decoded) and raise a
:class:`~beephost_protocol.errors.BeepHostError` for any failure, chained to what it saw.
"""

# ruff: noqa: ASYNC109  # `timeout` bounds the wait for a reply; deadlines stay explicit

import abc
import contextlib
import secrets
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Generator,
    Iterable,
    Iterator,
)
from typing import Any

from beephost_client._models import Output, OutputChunk
from beephost_client._transports import _file_commands as fc
from beephost_protocol import Command, Execute
from beephost_protocol.errors import BeepHostError

StreamItem = OutputChunk | Output | dict[str, Any]
"""What a stream yields: output chunks and rich outputs, then one result dict (last)."""

SyncStream = Generator[StreamItem, None, None]
AsyncStream = AsyncGenerator[StreamItem, None]


def new_lease() -> str:
    """A lease id: 128 random bits, base64url (docs/protocol/http.md, "Leases")."""
    return secrets.token_urlsafe(16)


class _Leased:
    """``lease``: the id every request is sent under, or None.

    Transports whose server ties the handles a client creates in ``default`` to a lease
    (HTTP, gRPC) set it; over the pipe the connection does that, and it stays None.
    """

    lease: str | None = None


class BaseTransport(_Leased, abc.ABC):
    """A blocking transport; safe to call from several threads at once."""

    @abc.abstractmethod
    def handle(self, command: Command, *, timeout: float) -> dict[str, Any]:
        """Send ``command`` and return the result object of its reply.

        Args:
            command: The command; session commands carry their server-side deadline.
            timeout: Seconds to wait for the reply before giving up client-side.

        Returns:
            The reply's result, with values still in their wire form.

        Raises:
            BeepHostError: The server's error, or a transport failure mapped to
                ``ConnectError``, ``ConnectionLost`` or ``ExecutionTimeout``.
        """

    @abc.abstractmethod
    def stream(self, command: Execute, *, timeout: float) -> SyncStream:
        """Run a streamed ``exec``: yield output chunks, then the result dict.

        Closing the generator early abandons the request (the connection is dropped).
        """

    def upload(
        self, file: fc.Upload, chunks: Iterable[bytes], *, timeout: float
    ) -> dict[str, Any]:
        """Write ``file`` from ``chunks``; its file info (a dict).

        The file appears whole under its path only once every chunk arrived; a failure
        on the way leaves nothing. ``timeout`` bounds each step, not the transfer.
        This default sends the file commands through :meth:`handle`.
        """
        opened = self.handle(fc.open_upload(file), timeout=timeout)
        upload = fc.upload_id(opened)
        try:
            offset = 0
            for chunk in chunks:
                for piece in fc.pieces(chunk) if chunk else ():
                    self.handle(fc.write(upload, offset, piece), timeout=timeout)
                    offset += len(piece)
            return self.handle(fc.commit(upload), timeout=timeout)
        except BaseException:
            with contextlib.suppress(BeepHostError):
                self.handle(fc.abort(upload), timeout=timeout)
            raise

    def download(
        self, path: str, *, offset: int, length: int | None, timeout: float
    ) -> Iterator[bytes]:
        """Yield a file's bytes from ``offset`` (``length`` of them, or to the end).

        ``timeout`` bounds each step. This default reads ranges with ``file.read``.
        """
        ranges = fc.Ranges(path, offset, length)
        while (command := ranges.next()) is not None:
            if data := ranges.take(self.handle(command, timeout=timeout)):
                yield data

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection; further calls fail."""


class AsyncBaseTransport(_Leased, abc.ABC):
    """An asyncio transport, the twin of :class:`BaseTransport`."""

    @abc.abstractmethod
    async def handle_async(self, command: Command, *, timeout: float) -> dict[str, Any]:
        """Async twin of :meth:`BaseTransport.handle`."""

    @abc.abstractmethod
    def stream_async(self, command: Execute, *, timeout: float) -> AsyncStream:
        """Async twin of :meth:`BaseTransport.stream`."""

    async def upload_async(
        self, file: fc.Upload, chunks: AsyncIterable[bytes], *, timeout: float
    ) -> dict[str, Any]:
        """Async twin of :meth:`BaseTransport.upload`."""
        opened = await self.handle_async(fc.open_upload(file), timeout=timeout)
        upload = fc.upload_id(opened)
        try:
            offset = 0
            async for chunk in chunks:
                for piece in fc.pieces(chunk) if chunk else ():
                    await self.handle_async(
                        fc.write(upload, offset, piece), timeout=timeout
                    )
                    offset += len(piece)
            return await self.handle_async(fc.commit(upload), timeout=timeout)
        except BaseException:
            with contextlib.suppress(BeepHostError):
                await self.handle_async(fc.abort(upload), timeout=timeout)
            raise

    async def download_async(
        self, path: str, *, offset: int, length: int | None, timeout: float
    ) -> AsyncIterator[bytes]:
        """Async twin of :meth:`BaseTransport.download`."""
        ranges = fc.Ranges(path, offset, length)
        while (command := ranges.next()) is not None:
            if data := ranges.take(await self.handle_async(command, timeout=timeout)):
                yield data

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close every connection; further calls fail."""
