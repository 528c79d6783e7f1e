"""AsyncPipeTransport: NDJSON over a pipe backend's Unix socket (docs/protocol/pipe.md).

This file is the source of ``_transports/_sync/pipe.py`` (PipeTransport), which
``packages/client/scripts/unasync.py`` generates from it. Each call takes a pooled
connection of ``_pipeio`` (``hello`` done once per connection), writes one request line
and reads lines until the reply with its id; events before it are the streamed output.
"""

# ruff: noqa: ASYNC109  # `timeout` bounds the wait for a reply; deadlines stay explicit

import collections
import contextlib
import time
from collections.abc import AsyncIterable
from typing import Any

from beephost_client._timeout import DEFAULT_TIMEOUT, Timeout
from beephost_client._transports import _file_commands as fc
from beephost_client._transports._pipeio import AsyncConnection
from beephost_client._transports._pool import AsyncPool
from beephost_client._transports.base import AsyncBaseTransport, AsyncStream
from beephost_protocol import Command, Execute
from beephost_protocol.errors import BeepHostError

#: Upload writes sent ahead of their replies on one connection: the server writes a
#: chunk to disk while the next ones arrive (one at a time, each waited for, left it
#: idle half the time).
UPLOAD_WINDOW = 4


class AsyncPipeTransport(AsyncBaseTransport):
    """Asyncio transport for ``unix://`` URLs: a pipe backend's Unix socket.

    Args:
        path: The socket's path.
        token: The server's token, sent in ``hello`` on every new connection.
        timeout: ``connect`` bounds connecting and the handshake.
        max_idle: Idle connections kept for reuse.
    """

    def __init__(
        self,
        path: str,
        *,
        token: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_idle: int = 16,
    ) -> None:
        self.path = str(path)
        self._token = token
        self._timeout = timeout
        self._pool: AsyncPool[AsyncConnection] = AsyncPool(self._connect, max_idle)

    async def _connect(self) -> AsyncConnection:
        return await AsyncConnection.open(self.path, self._token, self._timeout)

    async def handle_async(self, command: Command, *, timeout: float) -> dict[str, Any]:
        conn = await self._pool.acquire()
        try:
            deadline = time.monotonic() + timeout
            request_id = await conn.start(command, deadline)
            return await conn.reply(request_id, deadline)
        finally:
            self._pool.release(conn)

    async def stream_async(self, command: Execute, *, timeout: float) -> AsyncStream:
        conn = await self._pool.acquire()
        try:
            deadline = time.monotonic() + timeout
            request_id = await conn.start(command, deadline)
            while True:
                item = await conn.item(request_id, deadline)
                yield item
                if isinstance(item, dict):
                    return
        finally:
            self._pool.release(conn)

    async def upload_async(
        self, file: fc.Upload, chunks: AsyncIterable[bytes], *, timeout: float
    ) -> dict[str, Any]:
        """Write ``file`` from ``chunks``: the writes go out on one connection, up to
        ``UPLOAD_WINDOW`` ahead of their replies (the server applies them in the order
        sent: pipe.md §7); each reply is waited for at most ``timeout``."""
        opened = await self.handle_async(fc.open_upload(file), timeout=timeout)
        upload = fc.upload_id(opened)
        conn = await self._pool.acquire()
        try:
            sent: collections.deque[int] = collections.deque()
            offset = 0
            async for chunk in chunks:
                for piece in fc.pieces(chunk) if chunk else ():
                    if len(sent) == UPLOAD_WINDOW:
                        deadline = time.monotonic() + timeout
                        await conn.reply(sent.popleft(), deadline, keep=sent)
                    command = fc.write(upload, offset, piece)
                    sent.append(await conn.start(command, time.monotonic() + timeout))
                    offset += len(piece)
            while sent:
                deadline = time.monotonic() + timeout
                await conn.reply(sent.popleft(), deadline, keep=sent)
            deadline = time.monotonic() + timeout
            committed = await conn.start(fc.commit(upload), deadline)
            return await conn.reply(committed, deadline)
        except BaseException:
            with contextlib.suppress(BeepHostError):
                await self.handle_async(fc.abort(upload), timeout=timeout)
            raise
        finally:
            # A failure leaves the replies held for writes no one will await: the
            # connection may be reused, they must not stay with it.
            conn.early.clear()
            self._pool.release(conn)

    async def aclose(self) -> None:
        await self._pool.aclose()
