"""The HTTP transport: the HTTP backend's JSON API over keep-alive HTTP/1.1.

One pooled keep-alive connection per call in flight, speaking the small HTTP/1.1 codec
of ``_http11``: over a buffered blocking socket (sync) or ``asyncio`` streams (async).
Chosen by measurement (bench/sdk_roundtrip.py): a bare ``http.client`` POST spends more
client time per request than this whole transport does (its header parsing goes
through ``email.parser``), ``urllib`` more still, and ``httpx`` costs several times
that (and is no dependency of ours).
"""

# ruff: noqa: ASYNC109  # `timeout` bounds the wait for a reply; deadlines stay explicit

import asyncio
import contextlib
import importlib.metadata
import socket
import ssl
import time
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from beephost_client._config import DEFAULT_TIMEOUT, Timeout
from beephost_client._exceptions import ConnectError, ConnectionLost, InvalidArgument
from beephost_client._transports import _http11
from beephost_client._transports._pool import AsyncPool, Pool, dropped
from beephost_client._transports.base import (
    AsyncBaseTransport,
    AsyncStream,
    BaseTransport,
    SyncStream,
    new_lease,
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

    def __init__(self, url: str, token: str | None, lease: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgument(f"not an http(s) URL with a host: {url!r}")
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
        if lease:
            self.headers[_http11.LEASE_HEADER] = lease
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


# -- blocking: HTTP/1.1 over a socket ----------------------------------------------------


class _Connection:
    """One keep-alive connection: the ``_http11`` codec over a buffered socket."""

    def __init__(self, endpoint: _Endpoint, timeout: Timeout) -> None:
        self.endpoint = endpoint
        self.connect_timeout = timeout.connect
        self.sock: socket.socket | None = None
        self.file: BinaryIO | None = None
        self.clean = True

    def usable(self) -> bool:
        return self.sock is None or not dropped(self.sock)

    def close(self) -> None:
        self.clean = False
        if self.file is not None:
            self.file.close()
        if self.sock is not None:
            self.sock.close()
        self.sock = self.file = None

    def _open(self) -> tuple[socket.socket, BinaryIO]:
        endpoint = self.endpoint
        try:
            sock = socket.create_connection(
                (endpoint.host, endpoint.port), timeout=self.connect_timeout
            )
        except OSError as exc:  # refused, unreachable, connect timeout
            raise endpoint.connect_error(exc) from exc
        # One small write per request and an immediate reply: no Nagle delay.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if endpoint.ssl_context is not None:
            try:
                sock = endpoint.ssl_context.wrap_socket(
                    sock, server_hostname=endpoint.host
                )
            except OSError as exc:
                sock.close()
                raise endpoint.connect_error(exc) from exc
        self.sock, self.file = sock, sock.makefile("rb")
        return self.sock, self.file

    def send(self, route: _http11.Route, timeout: float) -> _http11.Head:
        """Send the request and read the response head."""
        if self.sock is None or self.file is None:
            sock, file = self._open()
        else:
            sock, file = self.sock, self.file
        self.clean = False
        endpoint = self.endpoint
        data = _http11.request_bytes(
            route.method,
            route.path,
            endpoint.host_header,
            endpoint.headers_for(route),
            route.body if route.body is not None or route.method == "GET" else b"",
        )
        try:
            sock.settimeout(timeout)
            sock.sendall(data)
            lines = []
            while (line := file.readline(65537)) not in (b"\r\n", b"\n"):
                if not line:
                    raise ConnectionResetError("the server closed the connection")
                lines.append(line)
        except TimeoutError as exc:
            raise _timed_out(route, timeout, exc) from exc
        except OSError as exc:
            raise endpoint.lost(exc) from exc
        try:
            return _http11.parse_head(b"".join(lines) + b"\r\n")
        except _http11.ProtocolError as exc:
            raise InternalError(
                f"bad HTTP response from {endpoint.url}: {exc}"
            ) from exc

    def read_piece(self, head: _http11.Head, state: list[int]) -> bytes:
        """The next piece of the body, b"" at its end (see the async twin)."""
        assert self.file is not None
        file = self.file
        try:
            if head.chunked:
                if state[0] < 0:
                    return b""
                size = _http11.chunk_size(file.readline(1024))
                if size == 0:
                    while file.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers: none expected, skipped
                    state[0] = -1
                    return b""
                piece = file.read(size + 2)
                if len(piece) < size + 2:
                    raise ConnectionResetError("the server closed the connection")
                return piece[:-2]
            if head.length is not None:
                piece = file.read(state[0]) if state[0] > 0 else b""
                if len(piece) < state[0]:
                    raise ConnectionResetError("the server closed the connection")
                state[0] = 0
                return piece
            return file.read(1 << 20)  # until the server closes
        except OSError as exc:
            raise self.endpoint.lost(exc) from exc
        except _http11.ProtocolError as exc:
            raise InternalError(
                f"bad HTTP response from {self.endpoint.url}: {exc}"
            ) from exc

    def read_body(self, head: _http11.Head) -> bytes:
        state = [head.length or 0]
        pieces = []
        while piece := self.read_piece(head, state):
            pieces.append(piece)
        self.clean = head.keep_alive and (head.chunked or head.length is not None)
        return b"".join(pieces)


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
        self._endpoint = _Endpoint(url, token, self.lease)
        self._timeout = timeout
        self._pool: Pool[_Connection] = Pool(self._connect, max_idle)

    def _connect(self) -> _Connection:
        return _Connection(self._endpoint, self._timeout)

    def handle(self, command: Command, *, timeout: float) -> dict[str, Any]:
        route = _http11.route(command, self._endpoint.prefix)
        conn = self._pool.acquire()
        try:
            head = conn.send(route, timeout)
            try:
                body = conn.read_body(head)
            except TimeoutError as exc:
                raise _timed_out(route, timeout, exc) from exc
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
                piece = self._piece(conn, head, state, route, deadline)
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
                        while self._piece(conn, head, state, route, deadline):
                            pass  # to the end of the body: the connection is reusable
                        conn.clean = head.keep_alive
                    yield item
                    if isinstance(item, dict):
                        return
        finally:
            self._pool.release(conn)

    @staticmethod
    def _piece(
        conn: _Connection,
        head: _http11.Head,
        state: list[int],
        route: _http11.Route,
        deadline: float,
    ) -> bytes:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0 or conn.sock is None:
                raise TimeoutError("deadline passed")
            conn.sock.settimeout(remaining)
            return conn.read_piece(head, state)
        except TimeoutError as exc:
            raise _timed_out(route, max(remaining, 0), exc) from exc

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
        self.lease = new_lease()
        self._endpoint = _Endpoint(url, token, self.lease)
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
