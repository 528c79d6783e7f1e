"""The asyncio Unix-socket server: connections, framing, auth, and the core underneath."""

import asyncio
import collections
import contextlib
import logging
import os
import socket
import struct
from pathlib import Path
from typing import Any

from beephost_core import Executor
from beephost_core.boot import distribution_version
from beephost_core.listeners import prepare_socket_path
from beephost_pipe_backend import dispatch
from beephost_pipe_backend.settings import Settings
from beephost_protocol import PROTOCOL_VERSION, LineTooLong, files
from beephost_protocol.errors import (
    BeepHostError,
    InternalError,
    InvalidRequest,
    Unauthorized,
    Unavailable,
    operator_note,
)
from beephost_protocol.payloads import (
    FrameDecoder,
    FramingLost,
    PayloadTooLarge,
    WithPayload,
)

logger = logging.getLogger(__name__)

SERVER_NAME = f"beephost-pipe-backend/{distribution_version('beephost-pipe-backend')}"


class PipeServer:
    """Serves the pipe protocol on ``settings.socket_path`` over one Executor."""

    def __init__(self, settings: Settings, executor: Executor) -> None:
        self.settings = settings
        self.executor = executor
        self._server: asyncio.Server | None = None
        self.connections: set[Connection] = set()
        self.draining = False
        self._token = settings.token_check()
        tallies = executor.metrics.tallies
        self.open_connections = tallies.gauge(
            "beephost_pipe_connections", "Open pipe connections."
        )
        self.unsent_bytes = tallies.gauge(
            "beephost_pipe_unsent_bytes",
            "Reply bytes held for clients that have not read them yet, over all "
            "connections (each is bounded by max_unsent_bytes).",
        )
        self.unsent_bytes.set_function(
            lambda: sum(conn.unsent_bytes() for conn in self.connections)
        )
        self._rejected = tallies.counter(
            "beephost_pipe_rejected_frames",
            "Frames answered with an error before reaching the core, by code.",
            ["code"],
        )

    @property
    def path(self) -> Path:
        return self.settings.socket_path

    async def start(self) -> None:
        """Bind the socket (replacing a stale one) and start accepting.

        Raises:
            RuntimeError: Another server listens on the path, or it is not a socket.
        """
        prepare_socket_path(self.path)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(
            lambda: Connection(self),
            path=str(self.path),
            # A burst up to the connection limit queues in the kernel and then gets
            # `unavailable` from us past the limit, never EAGAIN from connect().
            backlog=self.settings.max_connections + 1,
        )
        os.chmod(self.path, self.settings.socket_mode)
        logger.info("listening on %s", self.path)

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self, drain_timeout: float = 0.0) -> None:
        """Stop accepting, let in-flight requests finish for ``drain_timeout``, then close."""
        self.draining = True  # new requests get `unavailable`, ping says not ready
        if self._server is not None:
            self._server.close()
        tasks = {task for conn in self.connections for task in conn.tasks}
        if tasks and drain_timeout > 0:
            await asyncio.wait(tasks, timeout=drain_timeout)
        remaining = {task for conn in self.connections for task in conn.tasks}
        for task in remaining:
            task.cancel()  # each answers `unavailable` before it ends
        await asyncio.gather(*remaining, return_exceptions=True)
        for conn in list(self.connections):
            conn.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def reject(self, code: str) -> None:
        self._rejected.labels(code).inc()

    def check_token(self, presented: object) -> bool:
        return self._token is None or self._token.matches(presented)

    @property
    def auth_required(self) -> bool:
        return self._token is not None


class Connection(asyncio.Protocol):
    """One client: frames in, one task per request (answered by id), replies out.

    A Protocol rather than streams: frames are decoded in ``data_received`` and replies
    written straight to the transport, which saves a task hop per request.
    """

    def __init__(self, server: PipeServer) -> None:
        self.server = server
        self.settings = server.settings
        self.transport: asyncio.Transport | None = None
        # Looked up once: on Python 3.11 every asyncio.get_running_loop() (and so
        # asyncio.create_task) is a getpid() system call.
        self.loop = asyncio.get_running_loop()
        limit = server.settings.max_frame_bytes
        self.decoder = FrameDecoder(max_line=limit, max_payload=limit)
        self.authenticated = not server.auth_required
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        self.reading_paused = False
        self.backlog: collections.deque[bytes | WithPayload] = collections.deque()
        self._writable: asyncio.Future[None] | None = None
        #: Reply bytes held for the client, beside the transport's buffer: those of
        #: finished replies waiting to be written, and those ``file.read`` requests
        #: running will return (their size is known when they start).
        self.waiting_bytes = 0
        self.reserved_bytes = 0
        self.peer = "peer unknown"

    # -- transport callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.peer = _peer(transport)
        if len(self.server.connections) >= self.settings.max_connections:
            logger.warning(
                "turned away %s: %d connections open, the limit",
                self.peer,
                len(self.server.connections),
            )
            self._write(dispatch.error_frame(None, Unavailable("too many connections")))
            self._close()
            return
        self.server.connections.add(self)
        self.server.open_connections.inc()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        # Nobody is left to answer: the core interrupts each request's code, so that
        # it does not hold its session until its deadline.
        for task in self.tasks:
            task.cancel()
        # Handles this connection received in `default` die with it (pipe.md, 8).
        self.server.executor.release_owned(self)
        if self in self.server.connections:
            self.server.connections.discard(self)
            self.server.open_connections.dec()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        # Unsent output is over the transport's high-water mark: read no new frames
        # until the client catches up (a client that never reads must not grow us).
        self._writable = self.loop.create_future()
        self._pause_reading()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None
        self._drain_backlog()

    def data_received(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            if self.closing:
                return
            if isinstance(frame, LineTooLong | PayloadTooLarge):
                self._refuse_too_large(frame)
            elif isinstance(frame, FramingLost):
                self._lose_framing(frame)
            elif self._held_back():
                self.backlog.append(frame)  # wait for a slot, or for the client to read
                self._pause_reading()
            elif isinstance(frame, WithPayload) or frame.strip():
                self._on_frame(frame)

    def _refuse_too_large(self, frame: LineTooLong | PayloadTooLarge) -> None:
        limit = self.settings.max_frame_bytes
        what = "frame" if isinstance(frame, LineTooLong) else "binary payload"
        logger.info(
            "dropped a %d-byte %s from %s: over the %d-byte limit",
            frame.size,
            what,
            self.peer,
            limit,
        )
        self.server.reject("too_large")
        if isinstance(frame, LineTooLong):
            self._write(dispatch.too_long_error(frame, limit))
        else:
            self._write(dispatch.payload_too_large_error(frame, limit))

    def _lose_framing(self, frame: FramingLost) -> None:
        # Where the next frame starts is unknown: answer, then hang up.
        logger.info("closed %s: %s", self.peer, frame.reason)
        self.server.reject("invalid_request")
        error = InvalidRequest(f"{frame.reason}; the connection is closed")
        self._write(dispatch.error_frame(None, error))
        self._close()

    def _held_back(self) -> bool:
        return bool(self.backlog) or not self._may_start()

    def _may_start(self) -> bool:
        """Whether another request may start: a slot is free and the client reads
        its replies (the transport's buffer is under its high-water mark and all
        the connection holds unsent is under ``max_unsent_bytes``)."""
        return (
            len(self.tasks) < self.settings.max_inflight
            and self._writable is None
            and self.unsent_bytes() < self.settings.max_unsent_bytes
        )

    def unsent_bytes(self) -> int:
        """Reply bytes this connection holds that its client has not read yet."""
        buffered = self.transport.get_write_buffer_size() if self.transport else 0
        return buffered + self.waiting_bytes + self.reserved_bytes

    def _pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    # -- frames -------------------------------------------------------------------

    def _on_frame(self, received: bytes | WithPayload) -> None:
        try:
            if isinstance(received, WithPayload):
                frame = dispatch.decode_frame(received.line, received.payload)
            else:
                frame = dispatch.decode_frame(received)
        except dispatch.FrameError as exc:
            logger.info(
                "dropped a bad frame from %s: %s: %.200s",
                self.peer,
                exc.error.wire_code,
                exc.error.message,
            )
            self.server.reject(exc.error.wire_code)
            self._write(dispatch.error_frame(exc.id, exc.error))
            return
        if frame.command is not None and self.authenticated:
            if self.server.draining:
                draining = Unavailable("the server is shutting down; retry on another")
                self._write(dispatch.error_frame(frame.id, draining))
                return
            reserved = _reply_size(frame)
            self.reserved_bytes += reserved  # now: the next frame's check counts it
            task = self.loop.create_task(self._serve(frame, reserved))
            self.tasks.add(task)
            task.add_done_callback(self._done)
        elif frame.type == "ping":
            ready = self.server.executor.ready and not self.server.draining
            self._write(dispatch.result_frame(frame.id, {"pong": True, "ready": ready}))
        elif frame.type == "hello":
            self._hello(frame)
        else:
            logger.warning(
                "refused %s: %.64r before 'hello' with the token", self.peer, frame.type
            )
            self.server.reject("unauthorized")
            error = Unauthorized(
                "this server requires a token: send 'hello' with it first"
            )
            self._write(dispatch.error_frame(frame.id, error))
            self._close()

    def _hello(self, frame: dispatch.Frame) -> None:
        if not self.server.check_token(frame.params.get("token")):
            logger.warning("refused %s: invalid token", self.peer)  # never the token
            self.server.reject("unauthorized")
            self._write(dispatch.error_frame(frame.id, Unauthorized("invalid token")))
            self._close()
            return
        self.authenticated = True
        info = {
            "protocol": PROTOCOL_VERSION,
            "server": SERVER_NAME,
            "environment": self.settings.environment,
            "auth_required": self.server.auth_required,
            "max_frame_bytes": self.settings.max_frame_bytes,
            "max_inflight": self.settings.max_inflight,
            "max_result_bytes": self.settings.max_result_bytes,
        }
        self._write(dispatch.result_frame(frame.id, info))

    async def _serve(self, frame: dispatch.Frame, reserved: int) -> None:
        """Run one request and write its reply; ``reserved``: the bytes counted for
        its reply since it started, released here."""
        assert frame.command is not None

        def on_event(stream: str, data: Any) -> None:
            self._write(dispatch.event_frame(frame.id, stream, data))

        reply: tuple[bytes, ...] | None = None
        executor = self.server.executor
        try:
            try:
                if not executor.started:  # it came while the default worker boots
                    await executor.start()
                result = await executor.run(
                    frame.command, on_event, owner=self, raw=True
                )
                reply = dispatch.reply_frame(frame.id, result)
                del result  # only the encoded reply waits for the client
            except BeepHostError as exc:
                note = operator_note(exc, getattr(frame.command, "session", None))
                if note is not None:
                    logger.warning("%s (%s from %s)", note, frame.type, self.peer)
                reply = (dispatch.error_frame(frame.id, exc),)
            except Exception as exc:  # never let one request kill the connection
                logger.exception("unexpected error serving %s", frame.type)
                reply = (dispatch.error_frame(frame.id, InternalError(str(exc))),)
            # The client reads slowly: wait instead of buffering. A loop, so the
            # replies that waited go out one per resume, not all at once.
            self.reserved_bytes -= reserved
            reserved, waiting = 0, sum(map(len, reply))
            self.waiting_bytes += waiting
            try:
                while self._writable is not None and not self.closing:
                    await self._writable
            finally:
                self.waiting_bytes -= waiting
        except asyncio.CancelledError:
            self.reserved_bytes -= reserved
            # Shutdown outlived the drain: every request still gets an answer.
            if reply is None:
                error = Unavailable(
                    "the server shut down before the request finished; its outcome is unknown"
                )
                reply = (dispatch.error_frame(frame.id, error),)
            self._write(*reply)
            raise
        self._write(*reply)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._drain_backlog()

    def _drain_backlog(self) -> None:
        while self.backlog and self._may_start():
            frame = self.backlog.popleft()
            if self.closing:
                continue
            if isinstance(frame, WithPayload) or frame.strip():
                self._on_frame(frame)
        paused = (
            self.reading_paused
            and not self.backlog
            and self._may_start()
            and not self.closing
        )
        if paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    # -- output -------------------------------------------------------------------

    def _write(self, *parts: bytes) -> None:
        # Parts one after the other (a line, then its payload): never joined, which
        # would copy the payload.
        if self.transport is not None and not self.closing:
            for part in parts:
                self.transport.write(part)

    def _close(self) -> None:
        # Replies already written are flushed before the socket closes.
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    close = _close


def _reply_size(frame: dispatch.Frame) -> int:
    """The bytes a request's reply will hold when that is known before it runs: a
    ``file.read``'s chunk, raw or base64 (others are counted once done)."""
    command = frame.command
    if not isinstance(command, files.FileRead):
        return 0
    return command.length if command.binary else command.length * 4 // 3 + 1024


_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


def _peer(transport: asyncio.BaseTransport) -> str:
    """The client process, for the log: a Unix socket's peer has no address."""
    sock = transport.get_extra_info("socket")
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size)
        pid, uid, _ = _CREDENTIALS.unpack(raw)
    except (AttributeError, OSError):
        return "peer unknown"
    return f"peer pid {pid} uid {uid}"
