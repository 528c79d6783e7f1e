"""Streamed exec as NDJSON: output events as produced, then one result or error line.

The response starts with the first output (or the end, if there is none): until then
the request behaves exactly like ``POST /api/exec``, so an error that happens before any
output gets its real status. After that the status is 200 and an error is the last line.
"""

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Any

from beephost_core import Executor
from beephost_http_backend.responses import NDJSONResponse, encode
from beephost_protocol.errors import BeepHostError, InternalError
from beephost_protocol.models import Execute


class ExecStream:
    def __init__(
        self,
        executor: Executor,
        command: Execute,
        background: set["asyncio.Task[Any]"],
        lease: str | None = None,
    ) -> None:
        self._lines: collections.deque[bytes] = collections.deque()
        self._wakeup = asyncio.Event()
        # A task, not an await: the code runs while the response is being written.
        # When the client goes away it is cancelled: the core interrupts the code.
        self._task = asyncio.create_task(
            executor.run(command, self._on_event, lease=lease)
        )
        background.add(self._task)
        self._task.add_done_callback(self._finished)
        self._task.add_done_callback(background.discard)

    def _on_event(self, stream: str, data: Any) -> None:
        # Called from the worker channel's data_received: no awaiting here. The worker
        # caps streamed output at max_output_bytes per stream and rich outputs at
        # max_display_total_bytes, which bounds the buffer.
        self._lines.append(encode({"event": stream, "data": data}) + b"\n")
        self._wakeup.set()

    def _finished(self, task: "asyncio.Task[Any]") -> None:
        if not task.cancelled():
            task.exception()  # retrieved here even if the client left
        self._wakeup.set()

    async def response(self) -> NDJSONResponse:
        """Wait for the first output or the end; raise the error if nothing came out."""
        try:
            await self._wakeup.wait()
        except asyncio.CancelledError:
            self._task.cancel()  # the client went away (or the server stops)
            raise
        if not self._lines and self._task.done():
            self._task.result()  # raises the BeepHostError: a normal error response
        return NDJSONResponse(self._body())

    async def _body(self) -> AsyncIterator[bytes]:
        try:
            while True:
                self._wakeup.clear()
                if self._lines:
                    chunk = b"".join(self._lines)
                    self._lines.clear()
                    yield chunk
                if self._task.done() and not self._lines:
                    break
                if not self._lines:
                    await self._wakeup.wait()
            yield self._last_line()
        finally:
            self._task.cancel()  # abandoned before the end: interrupt the code

    def _last_line(self) -> bytes:
        try:
            result = self._task.result()
        except BeepHostError as exc:
            return encode({"error": exc.to_wire()}) + b"\n"
        except Exception as exc:  # the core wraps its own; this is a bug of ours
            error = InternalError(f"{type(exc).__name__}: {exc}")
            return encode({"error": error.to_wire()}) + b"\n"
        return encode({"result": result}) + b"\n"
