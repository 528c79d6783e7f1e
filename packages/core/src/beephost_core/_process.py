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
    BeepHostError,
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


class WorkerProcess:
    """A live worker. Callers serialise requests; one runs at a time."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._process = process
        self._reader = reader
        self._writer = writer
        self._next_id = 0
        self._stderr_tail: collections.deque[bytes] = collections.deque()
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        self.busy = False
        self.handles = 0
        self.killed_by_us = False

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.returncode is None

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
        finally:
            child.close()
        limit = config.max_result_bytes + 4 * config.max_output_bytes + (1 << 20)
        reader, writer = await asyncio.open_unix_connection(sock=parent, limit=limit)
        worker = cls(process, reader, writer)
        try:
            async with asyncio.timeout(config.spawn_timeout):
                line = await reader.readline()
            hello = json.loads(line) if line else {}
            if not hello.get("result", {}).get("ready"):
                raise Unavailable(
                    f"worker failed to start: {await worker.exit_reason()}"
                )
        except TimeoutError:
            await worker.kill()
            raise Unavailable(
                f"worker did not start within {config.spawn_timeout}s"
            ) from None
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
            self._writer.write(
                json.dumps(message, separators=(",", ":")).encode() + b"\n"
            )
            await self._writer.drain()
            try:
                async with asyncio.timeout_at(deadline):
                    return await self._read_reply(request_id, on_event)
            except TimeoutError:
                return await self._expire(request_id, grace)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise await self._lost() from exc
        finally:
            self.busy = False

    async def _read_reply(
        self, request_id: int, on_event: EventCallback | None
    ) -> dict[str, Any]:
        while True:
            try:
                line = await self._reader.readline()
            except ValueError as exc:  # a line over the reader's limit
                await self.kill()
                raise InternalError(
                    f"worker reply exceeded the channel limit: {exc}"
                ) from exc
            if not line:
                raise await self._lost()
            try:
                reply = json.loads(line)
            except ValueError:
                await (
                    self.kill()
                )  # the channel is corrupt: nothing after this can be trusted
                raise InternalError(
                    "the worker sent a malformed frame and was killed; the session's state is lost",
                    {"state_lost": True},
                ) from None
            if reply.get("id") != request_id:
                continue  # a late reply to an earlier request
            if "event" in reply:
                if on_event is not None:
                    on_event(reply["event"], reply.get("data", ""))
                continue
            self.handles = int(reply.get("handles", self.handles))
            if "error" in reply:
                raise error_from_wire(reply["error"])
            result: dict[str, Any] = reply["result"]
            return result

    async def _expire(self, request_id: int, grace: float) -> dict[str, Any]:
        self.interrupt()
        try:
            async with asyncio.timeout(grace):
                # A reply that raced the deadline still counts as a success.
                return await self._read_reply(request_id, None)
        except TimeoutError:
            await self.kill()
            raise ExecutionTimeout(
                f"deadline exceeded; the worker ignored the interrupt for {grace}s and was "
                "killed: the session's state was lost",
                {"state_lost": True},
            ) from None
        except SessionLost as exc:
            raise ExecutionTimeout(
                f"deadline exceeded and the worker died: {exc.message}",
                {"state_lost": True},
            ) from exc
        except BeepHostError as exc:  # normally the KeyboardInterrupt reply
            raise ExecutionTimeout(
                "deadline exceeded; the code was interrupted and the session's state is kept",
                {"state_lost": False},
            ) from exc

    def interrupt(self) -> bool:
        """Raise KeyboardInterrupt in the running user code; False if nothing runs."""
        if not self.busy or not self.alive:
            return False
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
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
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
