"""The HTTP transport: the HTTP backend's JSON API over keep-alive HTTP/1.1.

Blocking: the standard library's ``http.client``, one pooled keep-alive connection per
call in flight. Asyncio: the small HTTP/1.1 codec of ``_http11`` over ``asyncio``
streams. Both were measured against the alternatives (bench/sdk_roundtrip.py): on this
API ``http.client`` costs a fraction of what ``httpx`` does per request, and needs no
dependency.
"""

# ruff: noqa: ASYNC109  # `timeout` bounds the wait for a reply; deadlines stay explicit

import asyncio
import contextlib
import http.client
import importlib.metadata
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from beephost_client._config import DEFAULT_TIMEOUT, Timeout
from beephost_client._exceptions import ConnectError, ConnectionLost
from beephost_client._transports import _http11
from beephost_client._transports._pool import AsyncPool, Pool, dropped
from beephost_client._transports.base import (
    AsyncBaseTransport,
    AsyncStream,
    BaseTransport,
    SyncStream,
)
from beephost_protocol import Command, Execute, LineDecoder, LineTooLong
from beephost_protocol.errors import ExecutionTimeout, InternalError

try:
    _VERSION = importlib.metadata.version("beephost-client")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source checkout
    _VERSION = "0"
USER_AGENT = f"beephost-client/{_VERSION}"
MAX_STREAM_LINE = 256 << 20


class _Endpoint:
    """Where and how to connect, parsed once from the URL."""

    def __init__(self, url: str, token: str | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL with a host: {url!r}")
        self.url = url
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        default_port = self.port == (443 if self.tls else 80)
        self.host_header = (
            parts.netloc.rpartition("@")[2] if not default_port else self.host
        )
        self.headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.ssl_context = ssl.create_default_context() if self.tls else None

    def headers_for(self, route: _http11.Route) -> dict[str, str]:
        if route.deadline is None:
            return self.headers
        return {**self.headers, _http11.TIMEOUT_HEADER: repr(route.deadline)}

    def connect_error(self, exc: BaseException) -> ConnectError:
        error = ConnectError(
            f"cannot connect to {self.url}: {exc or type(exc).__name__}",
            {"url": self.url},
        )
        error.__cause__ = exc
        return error

    def lost(self, exc: BaseException) -> ConnectionLost:
        error = ConnectionLost(
            f"connection to {self.url} lost: {exc or type(exc).__name__}",
            {"url": self.url},
        )
        error.__cause__ = exc
        return error


def _timed_out(
    route: _http11.Route, waited: float, exc: BaseException
) -> ExecutionTimeout:
    error = ExecutionTimeout(
        f"no reply to {route.method} {route.path} within {waited:.3g}s (client-side limit)",
        {"client_side": True},
    )
    error.__cause__ = exc
    return error


# -- blocking: http.client --------------------------------------------------------------


class _Connection:
    def __init__(self, endpoint: _Endpoint, timeout: Timeout) -> None:
        self.endpoint = endpoint
        self.clean = True
        if endpoint.tls:
            self.http: http.client.HTTPConnection = http.client.HTTPSConnection(
                endpoint.host,
                endpoint.port,
                timeout=timeout.connect,
                context=endpoint.ssl_context,
            )
        else:
            self.http = http.client.HTTPConnection(
                endpoint.host, endpoint.port, timeout=timeout.connect
            )

    def usable(self) -> bool:
        return self.http.sock is None or not dropped(self.http.sock)

    def close(self) -> None:
        self.clean = False
        self.http.close()

    def send(self, route: _http11.Route, timeout: float) -> http.client.HTTPResponse:
        endpoint = self.endpoint
        self.clean = False
        sock: socket.socket | None = self.http.sock
        if sock is None:
            try:
                self.http.connect()
            except OSError as exc:  # refused, unreachable, connect timeout, TLS
                raise endpoint.connect_error(exc) from exc
            sock = self.http.sock
            assert sock is not None
            # One small write per request and an immediate reply: no Nagle delay.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        try:
            self.http.request(
                route.method, route.path, route.body, endpoint.headers_for(route)
            )
            return self.http.getresponse()
        except TimeoutError as exc:
            raise _timed_out(route, timeout, exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise endpoint.lost(exc) from exc

    def finish(self, response: http.client.HTTPResponse) -> None:
        """The response was read to its end: the connection may serve another one."""
        self.clean = not response.will_close


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
        self._endpoint = _Endpoint(url, token)
        self._timeout = timeout
        self._pool: Pool[_Connection] = Pool(self._connect, max_idle)

    def _connect(self) -> _Connection:
        return _Connection(self._endpoint, self._timeout)

    def handle(self, command: Command, *, timeout: float) -> dict[str, Any]:
        route = _http11.route(command, self._endpoint.prefix)
        conn = self._pool.acquire()
        try:
            response = conn.send(route, timeout)
            try:
                body = response.read()
            except TimeoutError as exc:
                raise _timed_out(route, timeout, exc) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise self._endpoint.lost(exc) from exc
            conn.finish(response)
            return _http11.result_or_error(response.status, body)
        finally:
            self._pool.release(conn)

    def stream(self, command: Execute, *, timeout: float) -> SyncStream:
        route = _http11.route(command, self._endpoint.prefix)
        conn = self._pool.acquire()
        try:
            deadline = time.monotonic() + timeout
            response = conn.send(route, timeout)
            if response.status != 200:
                error = _http11.error_of(response.status, response.read())
                conn.finish(response)
                raise error
            for line in self._lines(conn, response, route, deadline):
                item = _http11.stream_item(line)
                if item is None:
                    continue
                if isinstance(item, dict):
                    response.read()  # the terminating chunk, so the connection is reusable
                    conn.finish(response)
                yield item
                if isinstance(item, dict):
                    return
            raise self._endpoint.lost(
                ConnectionResetError("the stream ended without a result")
            )
        finally:
            self._pool.release(conn)

    def _lines(
        self,
        conn: _Connection,
        response: http.client.HTTPResponse,
        route: _http11.Route,
        deadline: float,
    ) -> Iterator[bytes]:
        sock = conn.http.sock
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError("deadline passed")
                if sock is not None:
                    sock.settimeout(remaining)
                line = response.readline(MAX_STREAM_LINE)
            except TimeoutError as exc:
                raise _timed_out(route, remaining, exc) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise self._endpoint.lost(exc) from exc
            if not line:
                return
            yield line

    def close(self) -> None:
        self._pool.close()


# -- asyncio: HTTP/1.1 over streams -----------------------------------------------------


class _AsyncConnection:
    def __init__(
        self,
        endpoint: _Endpoint,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.endpoint = endpoint
        self.reader = reader
        self.writer = writer
        self.clean = True

    @classmethod
    async def open(cls, endpoint: _Endpoint, timeout: Timeout) -> "_AsyncConnection":
        try:
            async with asyncio.timeout(timeout.connect):
                reader, writer = await asyncio.open_connection(
                    endpoint.host,
                    endpoint.port,
                    ssl=endpoint.ssl_context,
                    limit=MAX_STREAM_LINE,
                )
        except (OSError, TimeoutError) as exc:
            raise endpoint.connect_error(exc) from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(endpoint, reader, writer)

    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.clean = False
        self.writer.close()

    async def aclose(self) -> None:
        self.close()
        with contextlib.suppress(OSError, ssl.SSLError):  # the peer may be gone already
            await self.writer.wait_closed()

    async def send(self, route: _http11.Route) -> _http11.Head:
        endpoint = self.endpoint
        self.clean = False
        data = _http11.request_bytes(
            route.method,
            route.path,
            endpoint.host_header,
            endpoint.headers_for(route),
            route.body
            if route.body is not None
            else b""
            if route.method != "GET"
            else None,
        )
        try:
            self.writer.write(data)
            await self.writer.drain()
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise endpoint.lost(ConnectionResetError("the server closed it")) from exc
        except (OSError, asyncio.LimitOverrunError) as exc:
            raise endpoint.lost(exc) from exc
        try:
            return _http11.parse_head(head)
        except _http11.ProtocolError as exc:
            raise InternalError(
                f"bad HTTP response from {endpoint.url}: {exc}"
            ) from exc

    async def read_piece(self, head: _http11.Head, state: list[int]) -> bytes:
        """The next piece of the body, b"" at its end. ``state`` holds the bytes left
        of a Content-Length body, or -1 once a chunked body ended."""
        reader = self.reader
        try:
            if head.chunked:
                if state[0] < 0:
                    return b""
                size = _http11.chunk_size(await reader.readuntil(b"\r\n"))
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers: none expected, skipped
                    state[0] = -1
                    return b""
                piece = await reader.readexactly(size + 2)
                return piece[:-2]
            if head.length is not None:
                if state[0] <= 0:
                    return b""
                piece = await reader.read(min(state[0], 1 << 20))
                if not piece:
                    raise asyncio.IncompleteReadError(b"", state[0])
                state[0] -= len(piece)
                return piece
            return await reader.read(1 << 20)  # until the server closes
        except asyncio.IncompleteReadError as exc:
            raise self.endpoint.lost(
                ConnectionResetError("the server closed it")
            ) from exc
        except (OSError, asyncio.LimitOverrunError) as exc:
            raise self.endpoint.lost(exc) from exc
        except _http11.ProtocolError as exc:
            raise InternalError(
                f"bad HTTP response from {self.endpoint.url}: {exc}"
            ) from exc

    async def read_body(self, head: _http11.Head) -> bytes:
        state = [head.length or 0]
        if head.length is not None and not head.chunked:
            try:
                body = await self.reader.readexactly(head.length)
            except asyncio.IncompleteReadError as exc:
                raise self.endpoint.lost(
                    ConnectionResetError("the server closed it")
                ) from exc
            except OSError as exc:
                raise self.endpoint.lost(exc) from exc
            self.finish(head)
            return body
        pieces = []
        while piece := await self.read_piece(head, state):
            pieces.append(piece)
        self.finish(head)
        return b"".join(pieces)

    def finish(self, head: _http11.Head) -> None:
        self.clean = head.keep_alive and (head.chunked or head.length is not None)


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
        self._endpoint = _Endpoint(url, token)
        self._timeout = timeout
        self._pool: AsyncPool[_AsyncConnection] = AsyncPool(self._connect, max_idle)

    async def _connect(self) -> _AsyncConnection:
        return await _AsyncConnection.open(self._endpoint, self._timeout)

    async def handle_async(self, command: Command, *, timeout: float) -> dict[str, Any]:
        route = _http11.route(command, self._endpoint.prefix)
        conn = await self._pool.acquire()
        try:
            async with asyncio.timeout(timeout):
                head = await conn.send(route)
                body = await conn.read_body(head)
        except TimeoutError as exc:
            raise _timed_out(route, timeout, exc) from exc
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
                raise _timed_out(route, timeout, exc) from exc
            if head.status != 200:
                raise _http11.error_of(head.status, body)
            decoder = LineDecoder(MAX_STREAM_LINE)
            state = [head.length or 0]
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        piece = await conn.read_piece(head, state)
                except TimeoutError as exc:
                    raise _timed_out(route, deadline - loop.time(), exc) from exc
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
                        async with asyncio.timeout_at(deadline):
                            while await conn.read_piece(head, state):
                                pass  # to the end of the body: the connection is reusable
                        conn.finish(head)
                    yield item
                    if isinstance(item, dict):
                        return
        finally:
            self._pool.release(conn)

    async def aclose(self) -> None:
        await self._pool.aclose()
