"""MockTransport: answer commands with a function, for tests of code that uses the SDK."""

# ruff: noqa: ASYNC109  # `timeout` bounds the wait for a reply; deadlines stay explicit

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from beephost_client._exceptions import InvalidArgument
from beephost_client._models import OutputChunk
from beephost_client._transports.base import (
    AsyncBaseTransport,
    AsyncStream,
    BaseTransport,
    SyncStream,
)
from beephost_protocol import Command, Execute

Handler = Callable[[Command], dict[str, Any] | Awaitable[dict[str, Any]]]


class MockTransport(BaseTransport, AsyncBaseTransport):
    """A transport that calls ``handler(command)`` instead of a server.

    The handler returns the result object a server would (wire values, e.g.
    ``{"value": 2}``) or raises a :class:`~beephost_protocol.errors.BeepHostError`. It
    may be a coroutine function when used with :class:`AsyncClient`. For a streamed
    ``exec``, the ``stdout`` and ``stderr`` of its result are sent as output chunks.
    Works with both :class:`Client` and :class:`AsyncClient`.

    Args:
        handler: Called with each command model.

    Example::

        def handler(command):
            return {"value": 42}

        client = beephost_client.Client(transport=MockTransport(handler))
        assert client.evaluate("6 * 7") == 42
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.closed = False

    def handle(self, command: Command, *, timeout: float) -> dict[str, Any]:
        result = self.handler(command)
        if inspect.isawaitable(result):
            raise InvalidArgument("a coroutine handler needs AsyncClient")
        return result

    async def handle_async(self, command: Command, *, timeout: float) -> dict[str, Any]:
        result = self.handler(command)
        if inspect.isawaitable(result):
            result = await result
        return result

    def stream(self, command: Execute, *, timeout: float) -> SyncStream:
        yield from _as_stream(self.handle(command, timeout=timeout))

    async def stream_async(self, command: Execute, *, timeout: float) -> AsyncStream:
        for item in _as_stream(await self.handle_async(command, timeout=timeout)):
            yield item

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


def _as_stream(result: dict[str, Any]) -> list[OutputChunk | dict[str, Any]]:
    items: list[OutputChunk | dict[str, Any]] = []
    if result.get("stdout"):
        items.append(OutputChunk("stdout", result["stdout"]))
    if result.get("stderr"):
        items.append(OutputChunk("stderr", result["stderr"]))
    items.append({**result, "stdout": "", "stderr": ""})
    return items
