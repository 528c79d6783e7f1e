"""The asyncio Unix-socket server: connections, framing, auth, and the core underneath."""

import asyncio
import contextlib
import logging
import os
import socket
import stat
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

from beephost_core import Executor
from beephost_pipe_backend import dispatch
from beephost_pipe_backend.settings import Settings
from beephost_protocol import PROTOCOL_VERSION, LineDecoder, LineTooLong
from beephost_protocol.errors import (
    BeepHostError,
    InternalError,
    Unauthorized,
    Unavailable,
)

logger = logging.getLogger(__name__)

SERVER_NAME = "beephost-pipe-backend/0.1.0"
_READ_CHUNK = 1 << 16


class PipeServer:
    """Serves the pipe protocol on ``settings.socket_path`` over one :class:`Executor`."""

    def __init__(self, settings: Settings, executor: Executor) -> None:
        self.settings = settings
        self.executor = executor
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._token = settings.token.get_secret_value() if settings.token else None
        registry = executor.metrics.registry
        self._open_connections = Gauge(
            "beephost_pipe_connections", "Open pipe connections.", registry=registry
        )
        self._rejected = Counter(
            "beephost_pipe_rejected_frames",
            "Frames answered with an error before reaching the core, by code.",
            ["code"],
            registry=registry,
        )

    @property
    def path(self) -> Path:
        return self.settings.socket_path

    async def start(self) -> None:
        """Bind the socket (replacing a stale one) and start accepting.

        Raises:
            RuntimeError: Another server is listening on the path, or it is not a socket.
        """
        _prepare_socket_path(self.path)
        self._server = await asyncio.start_unix_server(
            self._accept, path=str(self.path)
        )
        os.chmod(self.path, self.settings.socket_mode)
        logger.info("listening on %s", self.path)

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self, drain_timeout: float = 0.0) -> None:
        """Stop accepting, let in-flight requests finish for ``drain_timeout``, then cancel."""
        if self._server is not None:
            self._server.close()
        if self._connections and drain_timeout > 0:
            await asyncio.wait(set(self._connections), timeout=drain_timeout)
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self.settings.max_connections:
            writer.write(
                dispatch.error_frame(None, Unavailable("too many connections"))
            )
            await _close(writer)
            return
        self._connections.add(task)
        self._open_connections.inc()
        try:
            await Connection(self, reader, writer).run()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            self._open_connections.dec()
            await _close(writer)

    def reject(self, code: str) -> None:
        self._rejected.labels(code).inc()

    def check_token(self, presented: object) -> bool:
        return self._token is None or dispatch.token_matches(self._token, presented)

    @property
    def auth_required(self) -> bool:
        return self._token is not None


class Connection:
    """One client: reads frames, runs each as a task (answered by id), writes replies."""

    def __init__(
        self,
        server: PipeServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.authenticated = not server.auth_required
        self.slots = asyncio.Semaphore(server.settings.max_inflight)
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        decoder = LineDecoder(self.server.settings.max_frame_bytes)
        try:
            while chunk := await self.reader.read(_READ_CHUNK):
                for line in decoder.feed(chunk):
                    if isinstance(line, LineTooLong):
                        self.server.reject("too_large")
                        self.writer.write(
                            dispatch.too_long_error(
                                line.size, self.server.settings.max_frame_bytes
                            )
                        )
                    elif line.strip() and not await self._on_line(line):
                        return
                await self.writer.drain()
        finally:
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _on_line(self, line: bytes) -> bool:
        """Handle one frame; False closes the connection."""
        try:
            frame = dispatch.decode_frame(line)
        except dispatch.FrameError as exc:
            self.server.reject(exc.error.wire_code)
            self.writer.write(dispatch.error_frame(exc.id, exc.error))
            return True
        if not self.authenticated and frame.type not in ("hello", "ping"):
            self.server.reject("unauthorized")
            error = Unauthorized(
                "this server requires a token: send 'hello' with it first"
            )
            self.writer.write(dispatch.error_frame(frame.id, error))
            await self.writer.drain()
            return False
        if frame.type == "hello":
            return self._hello(frame)
        if frame.type == "ping":
            self.writer.write(
                dispatch.result_frame(
                    frame.id, {"pong": True, "ready": self.server.executor.ready}
                )
            )
            return True
        await self.slots.acquire()  # bounds in-flight requests; reading waits here
        task = asyncio.create_task(self._serve(frame))
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return True

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.slots.release()

    def _hello(self, frame: dispatch.Frame) -> bool:
        if not self.server.check_token(frame.params.get("token")):
            self.server.reject("unauthorized")
            self.writer.write(
                dispatch.error_frame(frame.id, Unauthorized("invalid token"))
            )
            return False
        self.authenticated = True
        settings = self.server.settings
        info = {
            "protocol": PROTOCOL_VERSION,
            "server": SERVER_NAME,
            "environment": settings.environment,
            "auth_required": self.server.auth_required,
            "max_frame_bytes": settings.max_frame_bytes,
            "max_inflight": settings.max_inflight,
        }
        self.writer.write(dispatch.result_frame(frame.id, info))
        return True

    async def _serve(self, frame: dispatch.Frame) -> None:
        assert frame.command is not None

        def on_event(stream: str, data: str) -> None:
            self.writer.write(dispatch.event_frame(frame.id, stream, data))

        try:
            result = await self.server.executor.run(frame.command, on_event)
            reply = dispatch.result_frame(frame.id, result)
        except BeepHostError as exc:
            reply = dispatch.error_frame(frame.id, exc)
        except Exception as exc:  # never let one request kill the connection
            logger.exception("unexpected error serving %s", frame.type)
            reply = dispatch.error_frame(frame.id, InternalError(str(exc)))
        self.writer.write(reply)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()


def _prepare_socket_path(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)  # stale: left by a server that died
        logger.info("replaced stale socket %s", path)
        return
    finally:
        probe.close()
    raise RuntimeError(f"another server is listening on {path}")


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        await writer.wait_closed()
