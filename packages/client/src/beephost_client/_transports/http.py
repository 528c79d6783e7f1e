"""The HTTP transport: the HTTP backend's JSON API over keep-alive HTTP/1.1.

One pooled keep-alive connection per call in flight, speaking the small HTTP/1.1 codec
of ``_http11`` through the connections of ``_httpio`` (shared with the controller
client): over a buffered blocking socket (sync) or ``asyncio`` streams (async).
Chosen by measurement (bench/sdk_roundtrip.py): a bare ``http.client`` POST spends more
client time per request than this whole transport does (its header parsing goes
through ``email.parser``), ``urllib`` more still, and ``httpx`` costs several times
that (and is no dependency of ours).
"""

# ruff: noqa: ASYNC109  # `timeout` bounds the wait for a reply; deadlines stay explicit

import asyncio
import time
from typing import Any

from beephost_client._config import DEFAULT_TIMEOUT, Timeout
from beephost_client._transports import _http11
from beephost_client._transports._httpio import (
    MAX_STREAM_LINE,
    AsyncConnection,
    Connection,
    Endpoint,
    timed_out,
)
from beephost_client._transports._pool import AsyncPool, Pool
from beephost_client._transports.base import (
    AsyncBaseTransport,
    AsyncStream,
    BaseTransport,
    SyncStream,
    new_lease,
)
from beephost_protocol import Command, Execute, LineDecoder, LineTooLong
from beephost_protocol.errors import InternalError


class HTTPTransport(BaseTransport):
    """Blocking transport for ``http://`` and ``https://`` URLs (the HTTP backend).

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
        self._pool: Pool[Connection] = Pool(self._connect, max_idle)

    def _connect(self) -> Connection:
        return Connection(self._endpoint, self._timeout)

    def handle(self, command: Command, *, timeout: float) -> dict[str, Any]:
        route = _http11.route(command, self._endpoint.prefix)
        conn = self._pool.acquire()
        try:
            head = conn.send(route, timeout)
            try:
                body = conn.read_body(head)
            except TimeoutError as exc:
                raise timed_out(route, timeout, exc) from exc
        finally:
            self._pool.release(conn)
        return _http11.result_or_error(head.status, body)

    def stream(self, command: Execute, *, timeout: float) -> SyncStream:
        route = _http11.route(command, self._endpoint.prefix)
        conn = self._pool.acquire()
        try:
            deadline = time.monotonic() + timeout
            head = conn.send(route, timeout)
            if head.status != 200:
                raise _http11.error_of(head.status, conn.read_body(head))
            decoder = LineDecoder(MAX_STREAM_LINE)
            state = [head.length or 0]
            while True:
                piece = conn.read_piece_by(head, state, route, deadline)
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
                        while conn.read_piece_by(head, state, route, deadline):
                            pass  # to the end of the body: the connection is reusable
                        conn.clean = head.keep_alive
                    yield item
                    if isinstance(item, dict):
                        return
        finally:
            self._pool.release(conn)

    def close(self) -> None:
        self._pool.close()


class AsyncHTTPTransport(AsyncBaseTransport):
    """Asyncio transport for ``http://`` and ``https://``; the twin of :class:`HTTPTransport`.

    Args:
        url: The backend's base URL; a path prefix is kept.
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
        conn = await self._pool.acquire()
        try:
            async with asyncio.timeout(timeout):
                head = await conn.send(route)
                body = await conn.read_body(head)
        except TimeoutError as exc:
            raise timed_out(route, timeout, exc) from exc
        finally:
            self._pool.release(conn)
        return _http11.result_or_error(head.status, body)

    async def stream_async(self, command: Execute, *, timeout: float) -> AsyncStream:
        route = _http11.route(command, self._endpoint.prefix)
        conn = await self._pool.acquire()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    head = await conn.send(route)
                    if head.status != 200:
                        body = await conn.read_body(head)
            except TimeoutError as exc:
                raise timed_out(route, timeout, exc) from exc
            if head.status != 200:
                raise _http11.error_of(head.status, body)
            decoder = LineDecoder(MAX_STREAM_LINE)
            state = [head.length or 0]
            while True:
                piece = await conn.read_piece_by(head, state, route, deadline)
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
                        while await conn.read_piece_by(head, state, route, deadline):
                            pass  # to the end of the body: the connection is reusable
                        conn.finish(head)
                    yield item
                    if isinstance(item, dict):
                        return
        finally:
            self._pool.release(conn)

    async def aclose(self) -> None:
        await self._pool.aclose()
