"""AsyncHTTPTransport: the HTTP backend's JSON API over keep-alive HTTP/1.1.

This file is the source of ``_transports/_sync/http.py`` (HTTPTransport), which
``packages/client/scripts/unasync.py`` generates from it. One pooled keep-alive
connection per call in flight, speaking the small HTTP/1.1 codec of ``_http11``
through the connections of ``_httpio`` (shared with the controller transports).
Chosen by measurement (bench/sdk_roundtrip.py): a bare ``http.client`` POST spends more
client time per request than this whole transport does (its header parsing goes
through ``email.parser``), ``urllib`` more still, and ``httpx`` costs several times
that (and is no dependency of ours).
"""

# ruff: noqa: ASYNC109  # `timeout` bounds the wait for a reply; deadlines stay explicit

import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from beephost_client._exceptions import InvalidArgument
from beephost_client._timeout import DEFAULT_TIMEOUT, Timeout
from beephost_client._transports import _http11
from beephost_client._transports._endpoint import MAX_STREAM_LINE, Endpoint, timed_out
from beephost_client._transports._file_commands import Upload
from beephost_client._transports._httpio import AsyncConnection
from beephost_client._transports._pool import AsyncPool
from beephost_client._transports.base import AsyncBaseTransport, AsyncStream, new_lease
from beephost_protocol import Command, Execute, LineDecoder, LineTooLong
from beephost_protocol.errors import InternalError


class AsyncHTTPTransport(AsyncBaseTransport):
    """Asyncio transport for ``http://`` and ``https://`` URLs (the HTTP backend).

    Args:
        url: The backend's base URL; a path prefix is kept (behind a reverse proxy).
        token: The server's token, sent as ``Authorization: Bearer``.
        timeout: ``connect`` bounds connecting.
        max_idle: Idle keep-alive connections kept for reuse.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_idle: int = 16,
    ) -> None:
        self.lease = new_lease()
        self._endpoint = Endpoint(url, token, self.lease)
        self._timeout = timeout
        self._pool: AsyncPool[AsyncConnection] = AsyncPool(self._connect, max_idle)

    async def _connect(self) -> AsyncConnection:
        return await AsyncConnection.open(self._endpoint, self._timeout)

    async def handle_async(self, command: Command, *, timeout: float) -> dict[str, Any]:
        route = _http11.route(command, self._endpoint.prefix)
        deadline = time.monotonic() + timeout
        conn = await self._pool.acquire()
        try:
            head = await conn.send(route, deadline)
            body = await conn.read_body(head, deadline)
        except TimeoutError as exc:
            raise timed_out(route, timeout, exc) from exc
        finally:
            self._pool.release(conn)
        return _http11.result_or_error(head.status, body)

    async def stream_async(self, command: Execute, *, timeout: float) -> AsyncStream:
        route = _http11.route(command, self._endpoint.prefix)
        deadline = time.monotonic() + timeout
        conn = await self._pool.acquire()
        try:
            try:
                head = await conn.send(route, deadline)
                if head.status != 200:
                    body = await conn.read_body(head, deadline)
                    raise _http11.error_of(head.status, body)
                decoder = LineDecoder(MAX_STREAM_LINE)
                state = [head.length or 0]
                while True:
                    piece = await conn.read_piece(head, state, deadline)
                    if not piece:
                        raise self._endpoint.lost(
                            ConnectionResetError("the stream ended without a result")
                        )
                    for line in decoder.feed(piece):
                        if isinstance(line, LineTooLong):
                            raise InternalError(
                                f"a stream line exceeds {MAX_STREAM_LINE} bytes"
                            )
                        item = _http11.stream_item(line)
                        if item is None:
                            continue
                        if isinstance(item, dict):
                            while await conn.read_piece(head, state, deadline):
                                pass  # to the body's end: the connection is reusable
                            conn.finish(head)
                        yield item
                        if isinstance(item, dict):
                            return
            except TimeoutError as exc:
                raise timed_out(route, timeout, exc) from exc
        finally:
            self._pool.release(conn)

    async def upload_async(
        self, file: Upload, chunks: AsyncIterable[bytes], *, timeout: float
    ) -> dict[str, Any]:
        """PUT the file's bytes as they come: with a Content-Length when its size is
        known, else chunked; the body is sent only after the server's ``100 Continue``,
        so a refusal (quota, a taken name) costs no upload."""
        endpoint = self._endpoint
        size = file.size
        target = _http11.file_target(endpoint.prefix, file.path)
        if not file.overwrite:
            target += "?overwrite=false"
        route = _http11.Route("PUT", target, None, None)
        conn = await self._pool.acquire()
        try:
            try:
                await conn.write(endpoint.upload_head(target, size), _after(timeout))
                head = await conn.read_head(_after(timeout))
                if head.status == 100:
                    sent = 0
                    async for chunk in chunks:
                        if chunk:
                            piece = (
                                chunk
                                if size is not None
                                else _http11.chunk_frame(chunk)
                            )
                            await conn.write(piece, _after(timeout))
                            sent += len(chunk)
                    if size is not None and sent != size:
                        raise InvalidArgument(
                            f"the file's size changed while it was sent: {sent} "
                            f"bytes, not {size}"
                        )
                    if size is None:
                        await conn.write(_http11.chunk_frame(b""), _after(timeout))
                    head = await conn.read_head(_after(timeout))
                    body = await conn.read_body(head, _after(timeout))
                else:  # refused before the body: the connection cannot be reused
                    body = await conn.read_body(head, _after(timeout))
                    conn.clean = False
            except TimeoutError as exc:
                raise timed_out(route, timeout, exc) from exc
        finally:
            self._pool.release(conn)
        return _http11.result_or_error(head.status, body)

    async def download_async(
        self, path: str, *, offset: int, length: int | None, timeout: float
    ) -> AsyncIterator[bytes]:
        """GET the file's bytes (a Range for part of it), yielded as they arrive."""
        if length == 0:
            return
        endpoint = self._endpoint
        route = _http11.Route(
            "GET",
            _http11.file_target(endpoint.prefix, path),
            None,
            None,
            tuple(_http11.range_header(offset, length).items()),
        )
        conn = await self._pool.acquire()
        try:
            try:
                head = await conn.send(route, _after(timeout))
                if head.status not in (200, 206):
                    body = await conn.read_body(head, _after(timeout))
                    if head.status == _RANGE_PAST_THE_END:
                        return  # an offset at or past the end: nothing to read
                    raise _http11.error_of(head.status, body)
                state = [head.length or 0]
                while piece := await conn.read_piece(head, state, _after(timeout)):
                    yield piece
                conn.finish(head)
            except TimeoutError as exc:
                raise timed_out(route, timeout, exc) from exc
        finally:
            self._pool.release(conn)

    async def aclose(self) -> None:
        await self._pool.aclose()


_RANGE_PAST_THE_END = 416


def _after(seconds: float) -> float:
    """The deadline of one step of a transfer (the transfer itself has none)."""
    return time.monotonic() + seconds
