"""The controller's REST API on the wire: requests, responses, the transport interface.

:class:`ControllerTransport` (blocking) and :class:`AsyncControllerTransport` carry a
:class:`Request` and return a :class:`Response` as soon as its head arrived; the
controller clients (``_async/_controller.py`` and its generated twin) read the body.
The HTTP implementations are in ``_async/controller_http.py`` and its generated twin;
``MockTransport`` (``mock.py``) is the one for tests.
"""

# ruff: noqa: ASYNC109  # `timeout` bounds the whole exchange; deadlines stay explicit

import abc
import json
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass
from typing import Any

from beephost_client._exceptions import UsageError

DEFAULT_CONTROLLER_URL = "http://127.0.0.1:8600"
"""Where a controller listens by default (``BEEPHOST_CONTROLLER_HOST``/``_PORT``)."""

_NO_BODY = frozenset({204, 304})


@dataclass(frozen=True, slots=True)
class Request:
    """One call of the controller's REST API, as a transport sends it.

    Attributes:
        method: The HTTP method.
        path: The path below the controller's URL, with its query string.
        body: The JSON body, if any.
    """

    method: str
    path: str
    body: bytes | None = None

    def json(self) -> Any:
        """The body, decoded (``None`` without one)."""
        return json.loads(self.body) if self.body else None


class Response:
    """A reply of the controller: status, headers and a body read on demand.

    A transport returns it as soon as the head arrived; the body is read by
    :meth:`read` or, piece by piece, by :meth:`iter_bytes` (streamed replies), or by
    their asyncio twins :meth:`aread` and :meth:`aiter_bytes`. Reading to the end, or
    :meth:`close`, gives the connection back.

    Args:
        status: The HTTP status.
        headers: Header names in lower case.
        content: The body: bytes, or an iterable of pieces (read lazily; an async
            iterable for an asyncio transport).
        on_close: Called once when the body is done with (a transport's release).

    Example::

        def handler(request):
            return Response(200, content=b'{"status": "ok"}')
    """

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str] | None = None,
        content: bytes | Iterable[bytes] | AsyncIterable[bytes] = b"",
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.status = status
        self.headers: Mapping[str, str] = dict(headers or {})
        self._content = content
        self._on_close = on_close

    def iter_bytes(self) -> Iterator[bytes]:
        """Yield the body's pieces as they arrive, then release the connection."""
        try:
            if isinstance(self._content, bytes):
                if self._content:
                    yield self._content
            elif isinstance(self._content, AsyncIterable):
                raise UsageError("a streamed asyncio response: use aiter_bytes()")
            else:
                for piece in self._content:
                    if piece:
                        yield piece
        finally:
            self.close()

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The asyncio twin of :meth:`iter_bytes`."""
        try:
            if isinstance(self._content, AsyncIterable):
                async for piece in self._content:
                    if piece:
                        yield piece
            else:
                for piece in self.iter_bytes():
                    yield piece
        finally:
            self.close()

    def read(self) -> bytes:
        """The whole body."""
        return b"".join(self.iter_bytes())

    async def aread(self) -> bytes:
        """The asyncio twin of :meth:`read`."""
        return b"".join([piece async for piece in self.aiter_bytes()])

    def close(self) -> None:
        """Give the connection back (closed, unless the body was read to its end)."""
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    async def aclose(self) -> None:
        """The asyncio twin of :meth:`close`."""
        self.close()

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


class ControllerTransport(abc.ABC):
    """Carries :class:`Request` objects to a controller; safe to share between threads."""

    @abc.abstractmethod
    def handle(self, request: Request, *, timeout: float) -> Response:
        """Send ``request``; return the :class:`Response` once its head arrived.

        Args:
            request: The call.
            timeout: Seconds for the whole exchange, reading the body included.

        Returns:
            The response; its body is read from it (and must be, or closed).

        Raises:
            ConnectError: No connection could be made.
            ConnectionLost: The connection broke.
            ExecutionTimeout: ``timeout`` passed (``data["client_side"]`` is true).
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection."""


class AsyncControllerTransport(abc.ABC):
    """The asyncio twin of :class:`ControllerTransport` (one event loop)."""

    @abc.abstractmethod
    async def handle_async(self, request: Request, *, timeout: float) -> Response:
        """Async twin of :meth:`ControllerTransport.handle`."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close every connection."""
