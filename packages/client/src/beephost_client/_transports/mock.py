"""MockTransport: answer calls with a function, for tests of code that uses the SDK.

The one test transport of the SDK: it stands in for a backend under a
:class:`Client`/:class:`AsyncClient` (the handler gets protocol commands) and for a
controller under a ``ControllerClient``/``AsyncControllerClient`` (the handler gets
:class:`~beephost_client.controller.Request` objects).
"""

# ruff: noqa: ASYNC109  # `timeout` bounds the wait for a reply; deadlines stay explicit

import inspect
from collections.abc import Callable
from typing import Any, overload

from beephost_client._exceptions import InvalidArgument
from beephost_client._models import OutputChunk
from beephost_client._transports.base import (
    AsyncBaseTransport,
    AsyncStream,
    BaseTransport,
    SyncStream,
)
from beephost_client._transports.controller import (
    AsyncControllerTransport,
    ControllerTransport,
    Request,
    Response,
)
from beephost_protocol import Command, Execute

# Called with a Command (returns its result dict) or a Request (returns a Response),
# or a coroutine function doing that; typed loosely so that a handler may take either.
Handler = Callable[[Any], Any]


class MockTransport(
    BaseTransport, AsyncBaseTransport, ControllerTransport, AsyncControllerTransport
):
    """A transport that calls ``handler(call)`` instead of a server.

    Under a backend client the handler gets each command model and returns the
    result object a server would (wire values, e.g. ``{"value": 2}``); for a streamed
    ``exec``, the ``stdout`` and ``stderr`` of its result are sent as output chunks.
    Under a controller client it gets each :class:`~beephost_client.controller.Request`
    and returns a :class:`~beephost_client.controller.Response` (an iterable
    ``content`` is a streamed body). Either way it may raise a
    :class:`~beephost_protocol.errors.BeepHostError`, and may be a coroutine function
    when used with an asyncio client. Works with all four clients.

    Args:
        handler: Called with each command model or request.

    Example::

        def handler(command):
            return {"value": 42}

        client = beephost_client.Client(transport=MockTransport(handler))
        assert client.evaluate("6 * 7") == 42
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.closed = False

    @overload
    def handle(self, command: Command, *, timeout: float) -> dict[str, Any]: ...
    @overload
    def handle(self, command: Request, *, timeout: float) -> Response: ...
    def handle(
        self, command: Command | Request, *, timeout: float
    ) -> dict[str, Any] | Response:
        result = self.handler(command)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()  # never awaited: no "was never awaited" warning
            raise InvalidArgument("a coroutine handler needs an asyncio client")
        return result  # type: ignore[no-any-return]  # the handler is typed loosely

    @overload
    async def handle_async(
        self, command: Command, *, timeout: float
    ) -> dict[str, Any]: ...
    @overload
    async def handle_async(self, command: Request, *, timeout: float) -> Response: ...
    async def handle_async(
        self, command: Command | Request, *, timeout: float
    ) -> dict[str, Any] | Response:
        result = self.handler(command)
        if inspect.isawaitable(result):
            result = await result
        return result  # type: ignore[no-any-return]  # the handler is typed loosely

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
