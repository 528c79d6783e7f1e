"""Idle-connection pools for the connection-per-request transports (pipe, HTTP).

A call takes a connection, uses it for one request (and its reply) and gives it back;
a connection that did not finish cleanly (error, timeout, abandoned stream, cancelled
task) is closed instead of reused. Before reuse, a connection the server closed (a
restarted server) is detected and replaced, so no request is sent on a dead socket.
"""

import asyncio
import contextlib
import select
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from typing import BinaryIO, Generic, Protocol, TypeVar

from beephost_client._exceptions import UsageError


class Connection(Protocol):
    clean: bool  # True when no request is in flight and the last reply was fully read

    def usable(self) -> bool: ...

    def close(self) -> None: ...


C = TypeVar("C", bound=Connection)


def dropped(sock: socket.socket) -> bool:
    """Whether an idle socket was closed by its peer (or holds unexpected bytes).

    Leaves the socket non-blocking: its user sets a timeout before the next I/O.
    """
    if isinstance(sock, ssl.SSLSocket):  # no MSG_PEEK through TLS: anything readable
        poller = select.poll()  # on an idle connection is a close_notify or the end
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    try:
        # A socket with a timeout polls before recv whatever the flags: be non-blocking.
        sock.settimeout(0)
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False  # nothing to read: still open
    except OSError:
        return True
    return True  # end of file (closed), or bytes nobody asked for


class Pool(Generic[C]):
    """A thread-safe LIFO pool of idle connections; connections open on demand."""

    def __init__(self, connect: Callable[[], C], max_idle: int = 16) -> None:
        self._connect = connect
        self._max_idle = max_idle
        self._idle: list[C] = []
        self._lock = threading.Lock()
        self._closed = False

    def acquire(self) -> C:
        while True:
            with self._lock:
                if self._closed:
                    raise UsageError("the transport is closed")
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect()
            if conn.usable():
                return conn
            conn.close()

    def release(self, conn: C) -> None:
        with self._lock:
            if conn.clean and not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class AsyncConnection(Connection, Protocol):
    async def aclose(self) -> None: ...


A = TypeVar("A", bound=AsyncConnection)


class AsyncPool(Generic[A]):
    """The asyncio twin of :class:`Pool` (one event loop, so no lock)."""

    def __init__(self, connect: Callable[[], Awaitable[A]], max_idle: int = 16) -> None:
        self._connect = connect
        self._max_idle = max_idle
        self._idle: list[A] = []
        self._closed = False

    async def acquire(self) -> A:
        while True:
            if self._closed:
                raise UsageError("the transport is closed")
            if not self._idle:
                return await self._connect()
            conn = self._idle.pop()
            if conn.usable():
                return conn
            await conn.aclose()

    def release(self, conn: A) -> None:
        if conn.clean and not self._closed and len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            conn.close()  # no await: this runs in finally blocks, cancelled tasks too

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.aclose()


class SocketConnection:
    """The pool's side of a connection over a blocking socket (pipe and HTTP)."""

    sock: socket.socket
    file: BinaryIO
    clean: bool

    def usable(self) -> bool:
        return not dropped(self.sock)

    def close(self) -> None:
        self.clean = False
        self.file.close()
        self.sock.close()


class StreamConnection:
    """The pool's side of a connection over ``asyncio`` streams (pipe and HTTP)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    clean: bool

    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.clean = False
        self.writer.close()

    async def aclose(self) -> None:
        self.close()
        with contextlib.suppress(OSError):  # the peer is gone (ssl.SSLError included)
            await self.writer.wait_closed()
