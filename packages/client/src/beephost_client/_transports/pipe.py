"""The pipe transport: NDJSON over a Unix socket (docs/protocol/pipe.md).

Each call takes a pooled connection (``hello`` done once per connection), writes one
request line and reads lines until the reply with its id; events before it are the
streamed output. The framing and the reply classification are the pure functions at
the top, unit-tested with bytes and dicts.
"""

# ruff: noqa: ASYNC109  # `timeout` bounds the wait for a reply; deadlines stay explicit

import asyncio
import contextlib
import json
import socket
import time
from typing import Any

from beephost_client._config import DEFAULT_TIMEOUT, Timeout
from beephost_client._exceptions import ConnectError, ConnectionLost, ErrorReply
from beephost_client._models import OutputChunk, output_of
from beephost_client._transports._pool import AsyncPool, Pool, dropped
from beephost_client._transports.base import (
    AsyncBaseTransport,
    AsyncStream,
    BaseTransport,
    StreamItem,
    SyncStream,
)
from beephost_protocol import Command, Execute, encode
from beephost_protocol.errors import (
    BeepHostError,
    ExecutionTimeout,
    InternalError,
    TooLarge,
    Unauthorized,
    error_from_wire,
)

PROTOCOL_MAJOR = "1"
DEFAULT_MAX_FRAME = 32 << 20
# Replies are bounded by the server's result limit (16 MiB by default) plus envelope
# and escaping; the spec asks clients to accept at least 32 MiB lines.
MAX_REPLY_LINE = 256 << 20

# -- sans-I/O -----------------------------------------------------------------------------


def request_line(request_id: int, command: Command, max_frame: int) -> bytes:
    """One request line; refuses (as the server would) a line over ``max_frame``.

    Raises:
        TooLarge: The encoded request is longer than the server accepts.
    """
    line = encode(
        {
            "id": request_id,
            "type": command.COMMAND,
            "params": command.model_dump(exclude_defaults=True),
        }
    )
    if len(line) - 1 > max_frame:
        raise TooLarge(
            f"request of {len(line) - 1} bytes exceeds the server's "
            f"{max_frame}-byte limit; it was not sent",
            {"size": len(line) - 1, "limit": max_frame},
        )
    return line


def hello_line(request_id: int, token: str | None) -> bytes:
    return encode(
        {"id": request_id, "type": "hello", "params": {"token": token} if token else {}}
    )


def check_hello(result: dict[str, Any]) -> int:
    """Validate a ``hello`` result; return the server's ``max_frame_bytes``.

    Raises:
        InternalError: The server speaks another major protocol version.
    """
    protocol = str(result.get("protocol", ""))
    if protocol.split(".")[0] != PROTOCOL_MAJOR:
        raise InternalError(
            f"the server speaks pipe protocol {protocol!r}; this client speaks "
            f"{PROTOCOL_MAJOR}.x",
            {"protocol": protocol},
        )
    return int(result.get("max_frame_bytes", DEFAULT_MAX_FRAME))


def parse_line(line: bytes) -> dict[str, Any]:
    """Decode one line from the server.

    Raises:
        InternalError: The line is not a JSON object.
    """
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise InternalError(f"the server sent a line that is not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise InternalError("the server sent a line that is not a JSON object")
    return message


def classify(message: dict[str, Any], request_id: int) -> StreamItem | None:
    """What ``message`` means for the one request in flight with ``request_id``.

    Returns:
        An :class:`OutputChunk` for an event, the result dict for a response, or None
        for a line to ignore (another id, an unknown kind: forward compatibility).

    Raises:
        BeepHostError: The response is an error (an ``"id": null`` error, which names
            no request, is taken as the answer: one request is in flight).
    """
    rid = message.get("id")
    if rid != request_id and rid is not None:
        return None
    if "result" in message and rid is not None:
        result = message["result"]
        return result if isinstance(result, dict) else {}
    if "error" in message:
        payload = message["error"] if isinstance(message["error"], dict) else {}
        raise error_from_wire(payload) from ErrorReply("pipe", payload)
    if rid is not None and message.get("event") in ("stdout", "stderr"):
        return OutputChunk(message["event"], str(message.get("data", "")))
    if rid is not None and message.get("event") == "display":
        return output_of(message.get("data"))
    return None


def _timed_out(what: str, waited: float, exc: BaseException) -> ExecutionTimeout:
    error = ExecutionTimeout(
        f"no reply to {what} within {waited:.3g}s (client-side limit)",
        {"client_side": True},
    )
    error.__cause__ = exc
    return error


def _lost(path: str, exc: BaseException) -> ConnectionLost:
    error = ConnectionLost(
        f"connection to unix:{path} lost: {exc or type(exc).__name__}", {"path": path}
    )
    error.__cause__ = exc
    return error


# -- blocking -----------------------------------------------------------------------------


class _Connection:
    def __init__(self, path: str, token: str | None, timeout: Timeout) -> None:
        self.path = path
        self.clean = False
        self.next_id = 0
        self.max_frame = DEFAULT_MAX_FRAME
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout.connect)
            sock.connect(path)
        except OSError as exc:
            sock.close()
            raise ConnectError(
                f"cannot connect to unix:{path}: {exc}", {"path": path}
            ) from exc
        self.sock = sock
        self.file = sock.makefile("rb")
        try:
            self.next_id += 1
            deadline = time.monotonic() + timeout.connect
            self.send(hello_line(self.next_id, token), timeout.connect)
            self.max_frame = check_hello(self.reply(self.next_id, deadline))
        except Unauthorized:
            self.close()
            raise
        except BeepHostError as exc:
            self.close()
            raise ConnectError(
                f"handshake with unix:{path} failed: {exc.message}", {"path": path}
            ) from exc
        self.clean = True

    def usable(self) -> bool:
        return not dropped(self.sock)

    def close(self) -> None:
        self.clean = False
        self.file.close()
        self.sock.close()

    def send(self, line: bytes, timeout: float) -> None:
        self.clean = False
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(line)
        except OSError as exc:
            raise _lost(self.path, exc) from exc

    def start(self, command: Command, timeout: float) -> int:
        line = request_line(self.next_id + 1, command, self.max_frame)
        self.next_id += 1
        self.send(line, timeout)
        return self.next_id

    def item(self, request_id: int, deadline: float) -> StreamItem:
        """The next event or the reply of ``request_id`` (lines to ignore skipped)."""
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError("deadline passed")
                self.sock.settimeout(remaining)
                line = self.file.readline()
            except TimeoutError as exc:
                raise _timed_out(f"request {request_id}", remaining, exc) from exc
            except OSError as exc:
                raise _lost(self.path, exc) from exc
            if not line:
                raise _lost(self.path, ConnectionResetError("the server closed it"))
            try:
                item = classify(parse_line(line), request_id)
            except BeepHostError as exc:
                # An error reply ends the exchange cleanly, unless the server closes
                # the connection after it (unauthorized) or the line was garbage.
                self.clean = not isinstance(exc, Unauthorized | InternalError)
                raise
            if item is not None:
                if isinstance(item, dict):
                    self.clean = True
                return item

    def reply(self, request_id: int, deadline: float) -> dict[str, Any]:
        while True:
            item = self.item(request_id, deadline)
            if isinstance(item, dict):
                return item


class PipeTransport(BaseTransport):
    """Blocking transport for ``unix://`` URLs: a pipe backend's Unix socket.

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
        self._pool: Pool[_Connection] = Pool(self._connect, max_idle)

    def _connect(self) -> _Connection:
        return _Connection(self.path, self._token, self._timeout)

    def handle(self, command: Command, *, timeout: float) -> dict[str, Any]:
        conn = self._pool.acquire()
        try:
            deadline = time.monotonic() + timeout
            request_id = conn.start(command, timeout)
            return conn.reply(request_id, deadline)
        finally:
            self._pool.release(conn)

    def stream(self, command: Execute, *, timeout: float) -> SyncStream:
        conn = self._pool.acquire()
        try:
            deadline = time.monotonic() + timeout
            request_id = conn.start(command, timeout)
            while True:
                item = conn.item(request_id, deadline)
                yield item
                if isinstance(item, dict):
                    return
        finally:
            self._pool.release(conn)

    def close(self) -> None:
        self._pool.close()


# -- asyncio ------------------------------------------------------------------------------


class _AsyncConnection:
    def __init__(
        self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.path = path
        self.reader = reader
        self.writer = writer
        self.clean = False
        self.next_id = 0
        self.max_frame = DEFAULT_MAX_FRAME

    @classmethod
    async def open(
        cls, path: str, token: str | None, timeout: Timeout
    ) -> "_AsyncConnection":
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
            deadline = asyncio.get_running_loop().time() + timeout.connect
            conn.max_frame = check_hello(await conn.reply(conn.next_id, deadline))
        except Unauthorized:
            await conn.aclose()
            raise
        except BeepHostError as exc:
            await conn.aclose()
            raise ConnectError(
                f"handshake with unix:{path} failed: {exc.message}", {"path": path}
            ) from exc
        except BaseException:
            conn.close()
            raise
        conn.clean = True
        return conn

    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.clean = False
        self.writer.close()

    async def aclose(self) -> None:
        self.close()
        with contextlib.suppress(OSError):  # the peer is gone already: closed is closed
            await self.writer.wait_closed()

    async def start(self, command: Command) -> int:
        line = request_line(self.next_id + 1, command, self.max_frame)
        self.next_id += 1
        self.clean = False
        try:
            self.writer.write(line)
            await self.writer.drain()
        except OSError as exc:
            raise _lost(self.path, exc) from exc
        return self.next_id

    async def item(self, request_id: int, deadline: float) -> StreamItem:
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    line = await self.reader.readuntil(b"\n")
            except TimeoutError as exc:
                waited = deadline - loop.time()
                raise _timed_out(f"request {request_id}", waited, exc) from exc
            except asyncio.IncompleteReadError as exc:
                raise _lost(
                    self.path, ConnectionResetError("the server closed it")
                ) from exc
            except asyncio.LimitOverrunError as exc:
                raise TooLarge(
                    f"a reply line exceeds {MAX_REPLY_LINE} bytes",
                    {"limit": MAX_REPLY_LINE},
                ) from exc
            except OSError as exc:
                raise _lost(self.path, exc) from exc
            try:
                item = classify(parse_line(line), request_id)
            except BeepHostError as exc:
                self.clean = not isinstance(exc, Unauthorized | InternalError)
                raise
            if item is not None:
                if isinstance(item, dict):
                    self.clean = True
                return item

    async def reply(self, request_id: int, deadline: float) -> dict[str, Any]:
        while True:
            item = await self.item(request_id, deadline)
            if isinstance(item, dict):
                return item


class AsyncPipeTransport(AsyncBaseTransport):
    """Asyncio transport for ``unix://`` URLs; the twin of :class:`PipeTransport`.

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
        self._pool: AsyncPool[_AsyncConnection] = AsyncPool(self._connect, max_idle)

    async def _connect(self) -> _AsyncConnection:
        return await _AsyncConnection.open(self.path, self._token, self._timeout)

    async def handle_async(self, command: Command, *, timeout: float) -> dict[str, Any]:
        conn = await self._pool.acquire()
        try:
            request_id = await conn.start(command)
            deadline = asyncio.get_running_loop().time() + timeout
            return await conn.reply(request_id, deadline)
        finally:
            self._pool.release(conn)

    async def stream_async(self, command: Execute, *, timeout: float) -> AsyncStream:
        conn = await self._pool.acquire()
        try:
            request_id = await conn.start(command)
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                item = await conn.item(request_id, deadline)
                yield item
                if isinstance(item, dict):
                    return
        finally:
            self._pool.release(conn)

    async def aclose(self) -> None:
        await self._pool.aclose()
