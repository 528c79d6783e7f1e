"""One worker process: spawn it, talk to it over a socketpair, interrupt it, kill it."""

import asyncio
import collections
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from beephost_core.config import ExecutorConfig
from beephost_protocol.errors import (
    ExecutionTimeout,
    InternalError,
    SessionLost,
    Unavailable,
    error_from_wire,
)

logger = logging.getLogger(__name__)

WORKER_SCRIPT = str(Path(__file__).with_name("worker.py"))
_STDERR_TAIL = 4096

EventCallback = Callable[[str, str], None]


class _Channel(asyncio.Protocol):
    """The server's end of the worker socket: JSON lines straight into the waiting future.

    A Protocol rather than streams: each reply resolves the request's future from
    ``data_received`` without an extra task hop, which is most of the pipe's latency.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.expect_id = 0  # only replies to this request id resolve the waiter
        # Waiting for the worker's hello (id 0) from the start: it may arrive before
        # the spawner gets to ask for it.
        self.waiter: asyncio.Future[dict[str, Any]] | None = (
            asyncio.get_running_loop().create_future()
        )
        self.on_event: EventCallback | None = None
        self.broken: InternalError | None = None
        self.lost = False
        self.on_lost: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if not self.buffer and data.find(b"\n") == len(data) - 1:
            self._on_line(data)  # the common case: exactly one whole line
            return
        self.buffer += data
        while (end := self.buffer.find(b"\n")) >= 0 and self.broken is None:
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 1]
            self._on_line(line)
        if len(self.buffer) > self.limit:
            self._break(f"a worker frame exceeded the {self.limit}-byte channel limit")

    def _on_line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            self._break("the worker sent a malformed frame")
            return
        if not isinstance(message, dict) or message.get("id") != self.expect_id:
            return  # a late reply to an earlier, expired request
        if "event" in message:
            if self.on_event is not None:
                self.on_event(str(message["event"]), str(message.get("data", "")))
        elif self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(message)

    def _break(self, reason: str) -> None:
        # The channel is corrupt: nothing after this can be trusted.
        self.broken = InternalError(
            f"{reason}; it was killed and the session's state is lost",
            {"state_lost": True},
        )
        self.buffer.clear()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.broken)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.on_lost is not None:
            self.on_lost()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(
                self.broken or ConnectionResetError("worker gone")
            )

    def expect(
        self, request_id: int, on_event: EventCallback | None
    ) -> "asyncio.Future[dict[str, Any]]":
        if self.broken is not None or self.lost:
            raise self.broken or ConnectionResetError("worker gone")
        self.expect_id = request_id
        self.on_event = on_event
        self.waiter = asyncio.get_running_loop().create_future()
        return self.waiter


def _deadline_passed(future: "asyncio.Future[dict[str, Any]]") -> None:
    if not future.done():
        future.set_exception(TimeoutError())


_encode_message = json.JSONEncoder(separators=(",", ":")).encode


class WorkerProcess:
    """A live worker. Callers serialise requests; one runs at a time."""

    def __init__(self, process: asyncio.subprocess.Process, channel: _Channel) -> None:
        self._process = process
        self._channel = channel
        self._next_id = 0
        self._stderr_tail: collections.deque[bytes] = collections.deque()
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        self.busy = False
        self.handles = 0
        self.killed_by_us = False

    @property
    def pid(self) -> int:
        return self._process.pid

    def on_exit(self, callback: Callable[["WorkerProcess"], None]) -> None:
        """Call ``callback`` when the worker goes away by itself (not by kill())."""

        def lost() -> None:
            if not self.killed_by_us:
                callback(self)

        self._channel.on_lost = lost

    @property
    def alive(self) -> bool:
        return self._process.returncode is None and not self._channel.lost

    @classmethod
    async def spawn(cls, config: ExecutorConfig) -> "WorkerProcess":
        """Start a worker under ``config.python`` and wait for it to announce itself.

        Raises:
            Unavailable: The interpreter is missing or the worker did not start in time.
        """
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = await asyncio.create_subprocess_exec(
                config.python,
                "-I",  # isolated: no PYTHON* variables, no user site, no script dir
                WORKER_SCRIPT,
                str(child.fileno()),
                json.dumps(config.worker_settings()),
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=config.env,
                cwd=config.cwd,
                start_new_session=True,  # its own process group, killed as a whole
            )
        except OSError as exc:
            parent.close()
            raise Unavailable(f"cannot start worker {config.python!r}: {exc}") from exc
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        limit = config.max_result_bytes + 4 * config.max_output_bytes + (1 << 20)
        loop = asyncio.get_running_loop()
        _, channel = await loop.create_unix_connection(
            lambda: _Channel(limit), sock=parent
        )
        worker = cls(process, channel)
        ready = channel.waiter
        assert ready is not None
        try:
            async with asyncio.timeout(config.spawn_timeout):
                hello = await ready
            if not hello.get("result", {}).get("ready"):
                raise Unavailable("worker announced itself wrongly")
        except TimeoutError:
            await worker.kill()
            raise Unavailable(
                f"worker did not start within {config.spawn_timeout}s"
            ) from None
        except (ConnectionError, InternalError):
            reason = await worker.exit_reason()
            await worker.kill()
            raise Unavailable(f"worker failed to start: {reason}") from None
        except BaseException:
            await worker.kill()
            raise
        return worker

    async def request(
        self,
        op: str,
        params: dict[str, Any],
        *,
        deadline: float,
        grace: float,
        on_event: EventCallback | None = None,
    ) -> dict[str, Any]:
        """Send one operation and wait for its reply until ``deadline`` (loop time).

        At the deadline the worker gets SIGINT; if no reply arrives within ``grace`` it
        is killed and the timeout says the state was lost.

        Raises:
            BeepHostError: The worker's error, a timeout, or SessionLost if it died.
        """
        self._next_id += 1
        request_id = self._next_id
        message = {
            "id": request_id,
            "op": op,
            "params": params,
            "stream": on_event is not None,
        }
        self.busy = True
        try:
            future = self._channel.expect(request_id, on_event)
            assert self._channel.transport is not None
            self._channel.transport.write(_encode_message(message).encode() + b"\n")
            timer = asyncio.get_running_loop().call_at(
                deadline, _deadline_passed, future
            )
            try:
                reply = await future
            except TimeoutError:
                reply = await self._expire(request_id, grace)
            finally:
                timer.cancel()
        except ConnectionError as exc:
            raise await self._lost() from exc
        except InternalError:
            await self.kill()
            raise
        finally:
            self.busy = False
        self.handles = int(reply.get("handles", self.handles))
        if "error" in reply:
            raise error_from_wire(reply["error"])
        result: dict[str, Any] = reply["result"]
        return result

    async def _expire(self, request_id: int, grace: float) -> dict[str, Any]:
        self.interrupt()
        future = self._channel.expect(request_id, None)
        try:
            async with asyncio.timeout(grace):
                reply = await future
        except TimeoutError:
            await self.kill()
            raise ExecutionTimeout(
                f"deadline exceeded; the worker ignored the interrupt for {grace}s and was "
                "killed: the session's state was lost",
                {"state_lost": True},
            ) from None
        except ConnectionError:
            lost = await self._lost()
            raise ExecutionTimeout(
                f"deadline exceeded and the worker died: {lost.message}",
                {"state_lost": True},
            ) from lost
        if "error" in reply:  # normally the KeyboardInterrupt reply
            output = reply["error"].get("data") or {}
            kept = {
                k: v for k, v in output.items() if k.startswith(("stdout", "stderr"))
            }
            raise ExecutionTimeout(
                "deadline exceeded; the code was interrupted and the session's state is kept",
                {"state_lost": False, **kept},
            )
        return reply  # a reply that raced the deadline still counts as a success

    def interrupt(self) -> bool:
        """Raise KeyboardInterrupt in the running user code; False if nothing runs."""
        if not self.busy or not self.alive or self._channel.transport is None:
            return False
        # The frame goes first: it tells the worker which request the signal is for.
        self._channel.transport.write(b'{"interrupt":%d}\n' % self._next_id)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)
        return True

    async def kill(self) -> None:
        """Kill the worker and everything it started, then reap it."""
        self.killed_by_us = True
        if self.alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        await self.close()

    async def close(self) -> None:
        if self._channel.transport is not None:
            self._channel.transport.close()
        await self._process.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task

    async def exit_reason(self) -> str:
        """Why the worker ended: exit status or signal, plus its last stderr lines."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._process.wait()
        code = self._process.returncode
        if code is None:
            reason = "worker stopped answering"
        elif code < 0:
            name = signal.Signals(-code).name
            hint = (
                " (out of memory?)"
                if -code == signal.SIGKILL and not self.killed_by_us
                else ""
            )
            reason = f"worker killed by {name}{hint}"
        else:
            reason = f"worker exited with status {code}"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                await self._stderr_task
        tail = b"".join(self._stderr_tail).decode("utf-8", "replace").strip()
        return f"{reason}: {tail[-800:]}" if tail else reason

    async def _lost(self) -> SessionLost:
        reason = await self.exit_reason()
        code = self._process.returncode
        return SessionLost(
            f"the session's worker died ({reason}); its state is lost",
            {"exit_code": code, "reason": reason},
        )

    async def _drain_stderr(self) -> None:
        # Kept bounded: C-level output (faulthandler, crashes) is diagnostics, not data.
        stream = self._process.stderr
        assert stream is not None
        size = 0
        while chunk := await stream.read(4096):
            self._stderr_tail.append(chunk)
            size += len(chunk)
            while size > _STDERR_TAIL and len(self._stderr_tail) > 1:
                size -= len(self._stderr_tail.popleft())


def monotonic_deadline(timeout: float) -> float:
    """A deadline on the running loop's clock."""
    return asyncio.get_running_loop().time() + timeout


def now() -> float:
    return time.time()
