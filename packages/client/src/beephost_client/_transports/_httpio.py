"""HTTP/1.1 connections, blocking and asyncio, over TCP, TLS or a Unix socket.

The one HTTP layer of the SDK: the backend's HTTP transport (``http.py``) and the
controller's (``controller.py``) both speak the ``_http11`` codec through these
connections. A connection is taken from a pool for one request and its reply; it is
clean (reusable) once the reply was read to its end on a keep-alive connection.

The blocking and asyncio connections are written by hand, not generated: their I/O
really differs (a buffered socket with per-call timeouts against ``asyncio`` streams
under ``asyncio.timeout``), while the transports above them share their logic.
"""

# ruff: noqa: ASYNC109  # `timeout` holds the connect limit; deadlines stay explicit

import asyncio
import socket
import time
from collections.abc import Awaitable
from typing import BinaryIO

from beephost_client._timeout import Timeout
from beephost_client._transports import _http11
from beephost_client._transports._endpoint import MAX_STREAM_LINE, Endpoint
from beephost_client._transports._pool import SocketConnection, StreamConnection

# -- blocking: HTTP/1.1 over a socket ----------------------------------------------------
#
# Both connections take a ``deadline`` (``time.monotonic()``) and raise a bare
# TimeoutError when it passes: the transports above map it, with the same code in
# their sync and async twins (generated, see scripts/unasync.py).


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    return remaining


class Connection(SocketConnection):
    """One keep-alive connection: the ``_http11`` codec over a buffered socket."""

    def __init__(self, endpoint: Endpoint, sock: socket.socket) -> None:
        self.endpoint = endpoint
        self.sock = sock
        self.file: BinaryIO = sock.makefile("rb")
        self.clean = True

    @classmethod
    def open(cls, endpoint: Endpoint, timeout: Timeout) -> "Connection":
        """Connect (within ``timeout.connect``).

        Raises:
            ConnectError: No connection could be made.
        """
        if endpoint.socket_path is not None:
            return cls(endpoint, _open_unix(endpoint, timeout.connect))
        return cls(endpoint, _open_tcp(endpoint, timeout.connect))

    def send(self, route: _http11.Route, deadline: float) -> _http11.Head:
        """Send the request and read the response head."""
        self.write(self.endpoint.request_bytes(route), deadline)
        return self.read_head(deadline)

    def write(self, data: bytes, deadline: float) -> None:
        """Send bytes of a request (its head, or a piece of its body)."""
        self.clean = False
        try:
            self.sock.settimeout(_remaining(deadline))
            self.sock.sendall(data)
        except TimeoutError:
            raise
        except OSError as exc:
            raise self.endpoint.lost(exc) from exc

    def read_head(self, deadline: float) -> _http11.Head:
        """Read a response head (a ``100 Continue`` too: the caller decides)."""
        endpoint = self.endpoint
        try:
            self.sock.settimeout(_remaining(deadline))
            lines = []
            while (line := self.file.readline(65537)) not in (b"\r\n", b"\n"):
                if not line:
                    raise ConnectionResetError("the server closed the connection")
                lines.append(line)
        except TimeoutError:
            raise
        except OSError as exc:
            raise endpoint.lost(exc) from exc
        try:
            return _http11.parse_head(b"".join(lines) + b"\r\n")
        except _http11.ProtocolError as exc:
            raise endpoint.bad_reply(exc) from exc

    def read_piece(
        self, head: _http11.Head, state: list[int], deadline: float
    ) -> bytes:
        """The next piece of the body, b"" at its end (see :class:`AsyncConnection`)."""
        file = self.file
        try:
            self.sock.settimeout(_remaining(deadline))
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
                # At most 1 MiB at a time: a file's body must not be held whole.
                wanted = min(state[0], 1 << 20)
                piece = file.read(wanted) if wanted > 0 else b""
                if len(piece) < wanted:
                    raise ConnectionResetError("the server closed the connection")
                state[0] -= len(piece)
                return piece
            return file.read(1 << 20)  # until the server closes
        except TimeoutError:
            raise
        except OSError as exc:
            raise self.endpoint.lost(exc) from exc
        except _http11.ProtocolError as exc:
            raise self.endpoint.bad_reply(exc) from exc

    def read_body(self, head: _http11.Head, deadline: float) -> bytes:
        state = [head.length or 0]
        pieces = []
        while piece := self.read_piece(head, state, deadline):
            pieces.append(piece)
        self.finish(head)
        return b"".join(pieces)

    def finish(self, head: _http11.Head) -> None:
        """Mark the reply read: reusable if the server keeps the connection."""
        self.clean = head.keep_alive and (head.chunked or head.length is not None)


def _open_unix(endpoint: Endpoint, timeout: float | None) -> socket.socket:
    assert endpoint.socket_path is not None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(endpoint.socket_path)
    except OSError as exc:  # no such file, refused, path too long, timeout
        sock.close()
        raise endpoint.connect_error(exc) from exc
    return sock


def _open_tcp(endpoint: Endpoint, timeout: float | None) -> socket.socket:
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except OSError as exc:  # refused, unreachable, connect timeout
        raise endpoint.connect_error(exc) from exc
    # One small write per request and an immediate reply: no Nagle delay.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if endpoint.ssl_context is not None:
        try:
            sock = endpoint.ssl_context.wrap_socket(sock, server_hostname=endpoint.host)
        except OSError as exc:
            sock.close()
            raise endpoint.connect_error(exc) from exc
    return sock


# -- asyncio: HTTP/1.1 over streams -----------------------------------------------------


class AsyncConnection(StreamConnection):
    """One keep-alive connection: the ``_http11`` codec over ``asyncio`` streams."""

    def __init__(
        self,
        endpoint: Endpoint,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.endpoint = endpoint
        self.reader = reader
        self.writer = writer
        self.clean = True

    @classmethod
    async def open(cls, endpoint: Endpoint, timeout: Timeout) -> "AsyncConnection":
        """Connect (within ``timeout.connect``).

        Raises:
            ConnectError: No connection could be made.
        """
        try:
            async with asyncio.timeout(timeout.connect):
                if endpoint.socket_path is not None:
                    reader, writer = await asyncio.open_unix_connection(
                        endpoint.socket_path, limit=MAX_STREAM_LINE
                    )
                else:
                    reader, writer = await asyncio.open_connection(
                        endpoint.host,
                        endpoint.port,
                        ssl=endpoint.ssl_context,
                        limit=MAX_STREAM_LINE,
                    )
        except (OSError, TimeoutError) as exc:
            raise endpoint.connect_error(exc) from exc
        sock = writer.get_extra_info("socket")
        if sock is not None and endpoint.socket_path is None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(endpoint, reader, writer)

    async def send(self, route: _http11.Route, deadline: float) -> _http11.Head:
        """Send the request and read the response head."""
        await self.write(self.endpoint.request_bytes(route), deadline)
        return await self.read_head(deadline)

    async def write(self, data: bytes, deadline: float) -> None:
        """Send bytes of a request (its head, or a piece of its body)."""
        self.clean = False
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                self.writer.write(data)
                await self.writer.drain()
        except TimeoutError:
            raise
        except OSError as exc:
            raise self.endpoint.lost(exc) from exc

    async def read_head(self, deadline: float) -> _http11.Head:
        """Read a response head (a ``100 Continue`` too: the caller decides)."""
        endpoint = self.endpoint
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise endpoint.lost(ConnectionResetError("the server closed it")) from exc
        except TimeoutError:
            raise
        except (OSError, asyncio.LimitOverrunError) as exc:
            raise endpoint.lost(exc) from exc
        try:
            return _http11.parse_head(head)
        except _http11.ProtocolError as exc:
            raise endpoint.bad_reply(exc) from exc

    async def read_piece(
        self, head: _http11.Head, state: list[int], deadline: float
    ) -> bytes:
        """The next piece of the body, b"" at its end. ``state`` holds the bytes left
        of a Content-Length body, or -1 once a chunked body ended."""
        return await self._guarded(self._read_piece(head, state), deadline)

    async def _guarded(self, read: Awaitable[bytes], deadline: float) -> bytes:
        # A read by the deadline, its failures mapped (a bare TimeoutError stays).
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                return await read
        except asyncio.IncompleteReadError as exc:
            raise self.endpoint.lost(
                ConnectionResetError("the server closed it")
            ) from exc
        except TimeoutError:
            raise
        except (OSError, asyncio.LimitOverrunError) as exc:
            raise self.endpoint.lost(exc) from exc
        except _http11.ProtocolError as exc:
            raise self.endpoint.bad_reply(exc) from exc

    async def _read_piece(self, head: _http11.Head, state: list[int]) -> bytes:
        reader = self.reader
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

    async def read_body(self, head: _http11.Head, deadline: float) -> bytes:
        if head.length is not None and not head.chunked:  # one read: the common reply
            body = await self._guarded(self.reader.readexactly(head.length), deadline)
        else:
            state = [head.length or 0]
            pieces = []
            while piece := await self.read_piece(head, state, deadline):
                pieces.append(piece)
            body = b"".join(pieces)
        self.finish(head)
        return body

    def finish(self, head: _http11.Head) -> None:
        """Mark the reply read: reusable if the server keeps the connection."""
        self.clean = head.keep_alive and (head.chunked or head.length is not None)
