"""Pipe connections, blocking and asyncio: a Unix socket, ``hello`` once, then lines.

Written by hand, not generated: the blocking socket (per-call timeouts) and the
``asyncio`` streams (``asyncio.timeout``) really differ; the transports above them are
one source (``_transports/_async/pipe.py``). Both take a ``deadline``
(``time.monotonic()``) and map its passing to ``ExecutionTimeout``.
"""

# ruff: noqa: ASYNC109  # `timeout` holds the connect limit; deadlines stay explicit

import asyncio
import socket
import time
from collections.abc import Container
from typing import Any

from beephost_client._exceptions import ConnectError
from beephost_client._timeout import Timeout
from beephost_client._transports._pipe_codec import (
    DEFAULT_MAX_FRAME,
    MAX_REPLY_LINE,
    announced_payload,
    check_hello,
    classify,
    hello_line,
    lost,
    parse_line,
    request_frame,
    timed_out,
)
from beephost_client._transports._pool import SocketConnection, StreamConnection
from beephost_client._transports.base import StreamItem
from beephost_protocol import Command
from beephost_protocol.errors import (
    BeepHostError,
    InternalError,
    TooLarge,
    Unauthorized,
)


def _handshake_failed(path: str, exc: BeepHostError) -> ConnectError:
    error = ConnectError(
        f"handshake with unix:{path} failed: {exc.message}", {"path": path}
    )
    error.__cause__ = exc
    return error


def _classified(
    line: bytes,
    request_id: int,
    conn: "Connection | AsyncConnection",
    payload: bytes | None = None,
) -> StreamItem | None:
    try:
        item = classify(parse_line(line), request_id, payload)
    except BeepHostError as exc:
        # An error reply ends the exchange cleanly, unless the server closes the
        # connection after it (unauthorized) or the line was garbage.
        conn.clean = not isinstance(exc, Unauthorized | InternalError)
        raise
    if isinstance(item, dict):
        conn.clean = True
    return item


#: A line read and the binary payload after it, if any.
_Read = tuple[bytes, bytes | None]


def _kept(early: dict[int, list[_Read]], read: _Read, keep: Container[int]) -> bool:
    """Whether ``read`` is for one of the requests in ``keep`` (then it is held in
    ``early`` for them): a reply of a request other than the one awaited, which a
    caller with several requests in flight will await next."""
    if not keep:
        return False
    try:
        rid = parse_line(read[0]).get("id")
    except BeepHostError:
        return False  # garbage: what it means is for the awaited request to say
    if not isinstance(rid, int) or rid not in keep:
        return False
    early.setdefault(rid, []).append(read)
    return True


def _held(early: dict[int, list[_Read]], request_id: int) -> _Read | None:
    """The first line held for ``request_id`` (``_kept``), if any."""
    held = early.get(request_id)
    if not held:
        return None
    read = held.pop(0)
    if not held:
        del early[request_id]
    return read


# -- blocking -----------------------------------------------------------------------------


class Connection(SocketConnection):
    """One pipe connection over a blocking socket."""

    def __init__(self, path: str, sock: socket.socket) -> None:
        self.path = path
        self.sock = sock
        self.file = sock.makefile("rb")
        self.clean = False
        self.next_id = 0
        self.max_frame = DEFAULT_MAX_FRAME
        #: Lines of requests in flight that came while another was awaited.
        self.early: dict[int, list[_Read]] = {}

    @classmethod
    def open(cls, path: str, token: str | None, timeout: Timeout) -> "Connection":
        """Connect and shake hands, within ``timeout.connect``.

        Raises:
            ConnectError: No connection, or a failed handshake.
            Unauthorized: The server refused the token.
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout.connect)
            sock.connect(path)
        except OSError as exc:
            sock.close()
            raise ConnectError(
                f"cannot connect to unix:{path}: {exc}", {"path": path}
            ) from exc
        conn = cls(path, sock)
        try:
            conn.next_id += 1
            deadline = time.monotonic() + timeout.connect
            conn.send(hello_line(conn.next_id, token), deadline)
            conn.max_frame = check_hello(conn.reply(conn.next_id, deadline))
        except Unauthorized:
            conn.close()
            raise
        except BeepHostError as exc:
            conn.close()
            raise _handshake_failed(path, exc) from exc
        conn.clean = True
        return conn

    def send(self, line: bytes, deadline: float, payload: bytes = b"") -> None:
        self.clean = False
        try:
            # A deadline already passed still gets one short try (0 is non-blocking).
            self.sock.settimeout(max(deadline - time.monotonic(), 1e-3))
            self.sock.sendall(line)
            if payload:
                self.sock.sendall(payload)
        except OSError as exc:
            raise lost(self.path, exc) from exc

    def start(self, command: Command, deadline: float) -> int:
        """Send ``command``; return its request id."""
        line, payload = request_frame(self.next_id + 1, command, self.max_frame)
        self.next_id += 1
        self.send(line, deadline, payload)
        return self.next_id

    def item(
        self, request_id: int, deadline: float, keep: Container[int] = ()
    ) -> StreamItem:
        """The next event or the reply of ``request_id`` (lines to ignore skipped,
        but those of the requests in ``keep``, held for them)."""
        while True:
            read = _held(self.early, request_id) or self._read(request_id, deadline)
            if _kept(self.early, read, keep):
                continue
            item = _classified(read[0], request_id, self, read[1])
            if item is not None:
                return item

    def _read(self, request_id: int, deadline: float) -> _Read:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError("deadline passed")
            self.sock.settimeout(remaining)
            line = self.file.readline()
        except TimeoutError as exc:
            raise timed_out(f"request {request_id}", remaining, exc) from exc
        except OSError as exc:
            raise lost(self.path, exc) from exc
        if not line:
            raise lost(self.path, ConnectionResetError("the server closed it"))
        announced = announced_payload(line)
        if announced is None:
            return line, None
        size, line = announced
        return line, self._read_payload(size, request_id, deadline)

    def _read_payload(self, size: int, request_id: int, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError("deadline passed")
            self.sock.settimeout(remaining)
            payload = self.file.read(size)
        except TimeoutError as exc:
            raise timed_out(f"request {request_id}", remaining, exc) from exc
        except OSError as exc:
            raise lost(self.path, exc) from exc
        if len(payload) < size:
            raise lost(self.path, ConnectionResetError("the server closed it"))
        return payload

    def reply(
        self, request_id: int, deadline: float, keep: Container[int] = ()
    ) -> dict[str, Any]:
        while True:
            item = self.item(request_id, deadline, keep)
            if isinstance(item, dict):
                return item


# -- asyncio ------------------------------------------------------------------------------


class AsyncConnection(StreamConnection):
    """One pipe connection over ``asyncio`` streams."""

    def __init__(
        self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.path = path
        self.reader = reader
        self.writer = writer
        self.clean = False
        self.next_id = 0
        self.max_frame = DEFAULT_MAX_FRAME
        #: Lines of requests in flight that came while another was awaited.
        self.early: dict[int, list[_Read]] = {}

    @classmethod
    async def open(
        cls, path: str, token: str | None, timeout: Timeout
    ) -> "AsyncConnection":
        """Connect and shake hands, within ``timeout.connect``.

        Raises:
            ConnectError: No connection, or a failed handshake.
            Unauthorized: The server refused the token.
        """
        try:
            async with asyncio.timeout(timeout.connect):
                reader, writer = await asyncio.open_unix_connection(
                    path, limit=MAX_REPLY_LINE
                )
        except (OSError, TimeoutError) as exc:
            raise ConnectError(
                f"cannot connect to unix:{path}: {exc or 'timed out'}", {"path": path}
            ) from exc
        conn = cls(path, reader, writer)
        try:
            conn.next_id += 1
            conn.writer.write(hello_line(conn.next_id, token))
            deadline = time.monotonic() + timeout.connect
            conn.max_frame = check_hello(await conn.reply(conn.next_id, deadline))
        except Unauthorized:
            await conn.aclose()
            raise
        except BeepHostError as exc:
            await conn.aclose()
            raise _handshake_failed(path, exc) from exc
        except BaseException:
            conn.close()
            raise
        conn.clean = True
        return conn

    async def start(self, command: Command, deadline: float) -> int:
        """Send ``command``; return its request id."""
        line, payload = request_frame(self.next_id + 1, command, self.max_frame)
        self.next_id += 1
        self.clean = False
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                self.writer.write(line)
                if payload:
                    self.writer.write(payload)
                await self.writer.drain()
        except TimeoutError as exc:
            raise timed_out(f"request {self.next_id}", 0, exc) from exc
        except OSError as exc:
            raise lost(self.path, exc) from exc
        return self.next_id

    async def item(
        self, request_id: int, deadline: float, keep: Container[int] = ()
    ) -> StreamItem:
        """The next event or the reply of ``request_id`` (lines to ignore skipped,
        but those of the requests in ``keep``, held for them)."""
        while True:
            read = _held(self.early, request_id) or await self._read(
                request_id, deadline
            )
            if _kept(self.early, read, keep):
                continue
            item = _classified(read[0], request_id, self, read[1])
            if item is not None:
                return item

    async def _read(self, request_id: int, deadline: float) -> _Read:
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                line = await self.reader.readuntil(b"\n")
                announced = announced_payload(line)
                payload = None
                if announced is not None:
                    size, line = announced
                    payload = await self.reader.readexactly(size)
        except TimeoutError as exc:
            waited = deadline - time.monotonic()
            raise timed_out(f"request {request_id}", waited, exc) from exc
        except asyncio.IncompleteReadError as exc:
            raise lost(self.path, ConnectionResetError("the server closed it")) from exc
        except asyncio.LimitOverrunError as exc:
            raise TooLarge(
                f"a reply line exceeds {MAX_REPLY_LINE} bytes",
                {"limit": MAX_REPLY_LINE},
            ) from exc
        except OSError as exc:
            raise lost(self.path, exc) from exc
        return line, payload

    async def reply(
        self, request_id: int, deadline: float, keep: Container[int] = ()
    ) -> dict[str, Any]:
        while True:
            item = await self.item(request_id, deadline, keep)
            if isinstance(item, dict):
                return item
