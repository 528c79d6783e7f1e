"""The controller's REST API on the wire: requests, responses, and the HTTP transports.

:class:`ControllerTransport` (blocking) and :class:`AsyncControllerTransport` carry a
:class:`Request` and return a :class:`Response` as soon as its head arrived; the
controller clients (``_async/_controller.py`` and its generated twin) read the body.
The HTTP transports speak through the connections of ``_httpio``, the same ones as the
backend's HTTP transport, over TCP, TLS or (``unix:///path``) a Unix socket.
"""

# ruff: noqa: ASYNC109  # `timeout` bounds the whole exchange; deadlines stay explicit

import abc
import asyncio
import json
import time
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

from beephost_client._config import DEFAULT_TIMEOUT, Timeout
from beephost_client._exceptions import UsageError
from beephost_client._transports import _http11
from beephost_client._transports._httpio import (
    AsyncConnection,
    Connection,
    Endpoint,
    timed_out,
)
from beephost_client._transports._pool import AsyncPool, Pool

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


def _endpoint(url: str, token: str | None) -> Endpoint:
    return Endpoint(url, token, unix=True)


def _route(endpoint: Endpoint, request: Request) -> _http11.Route:
    return _http11.Route(
        request.method, endpoint.prefix + request.path, request.body, None
    )


class HTTPControllerTransport(ControllerTransport):
    """The controller's HTTP/1.1 API over pooled keep-alive connections.

    Args:
        url: The controller's base URL (a path prefix is kept, behind a proxy), or
            ``unix:///abs/path/api.sock``: HTTP over that Unix socket.
        token: The controller's API token, sent as ``Authorization: Bearer``.
        timeout: ``connect`` bounds connecting.

    Raises:
        ValueError: ``url`` is neither an ``http(s)://`` URL with a host nor a
            ``unix:///`` URL with an absolute path.
    """

    def __init__(
        self,
        url: str = DEFAULT_CONTROLLER_URL,
        *,
        token: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self._endpoint = _endpoint(url, token)
        self._timeout = timeout
        self._pool: Pool[Connection] = Pool(self._connect, max_idle=4)

    def _connect(self) -> Connection:
        return Connection(self._endpoint, self._timeout)

    def handle(self, request: Request, *, timeout: float) -> Response:
        route = _route(self._endpoint, request)
        deadline = time.monotonic() + timeout
        conn = self._pool.acquire()
        try:
            head = conn.send(route, timeout)
        except BaseException:
            self._pool.release(conn)
            raise
        if head.status in _NO_BODY or request.method == "HEAD":
            conn.clean = head.keep_alive
            self._pool.release(conn)
            return Response(head.status, head.headers)
        return Response(
            head.status,
            head.headers,
            self._body(conn, head, route, deadline),
            on_close=lambda: self._pool.release(conn),
        )

    @staticmethod
    def _body(
        conn: Connection, head: _http11.Head, route: _http11.Route, deadline: float
    ) -> Iterator[bytes]:
        state = [head.length or 0]
        while piece := conn.read_piece_by(head, state, route, deadline):
            yield piece
        conn.finish(head)

    def close(self) -> None:
        self._pool.close()


class AsyncHTTPControllerTransport(AsyncControllerTransport):
    """The asyncio twin of :class:`HTTPControllerTransport`.

    Args:
        url: The controller's base URL, or ``unix:///abs/path/api.sock``.
        token: The controller's API token, sent as ``Authorization: Bearer``.
        timeout: ``connect`` bounds connecting.

    Raises:
        ValueError: ``url`` is neither an ``http(s)://`` URL with a host nor a
            ``unix:///`` URL with an absolute path.
    """

    def __init__(
        self,
        url: str = DEFAULT_CONTROLLER_URL,
        *,
        token: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self._endpoint = _endpoint(url, token)
        self._timeout = timeout
        self._pool: AsyncPool[AsyncConnection] = AsyncPool(self._connect, max_idle=4)

    async def _connect(self) -> AsyncConnection:
        return await AsyncConnection.open(self._endpoint, self._timeout)

    async def handle_async(self, request: Request, *, timeout: float) -> Response:
        route = _route(self._endpoint, request)
        deadline = asyncio.get_running_loop().time() + timeout
        conn = await self._pool.acquire()
        try:
            async with asyncio.timeout_at(deadline):
                head = await conn.send(route)
        except TimeoutError as exc:
            self._pool.release(conn)
            raise timed_out(route, timeout, exc) from exc
        except BaseException:
            self._pool.release(conn)
            raise
        if head.status in _NO_BODY or request.method == "HEAD":
            conn.clean = head.keep_alive
            self._pool.release(conn)
            return Response(head.status, head.headers)
        return Response(
            head.status,
            head.headers,
            self._body(conn, head, route, deadline),
            on_close=lambda: self._pool.release(conn),
        )

    @staticmethod
    async def _body(
        conn: AsyncConnection,
        head: _http11.Head,
        route: _http11.Route,
        deadline: float,
    ) -> AsyncIterator[bytes]:
        state = [head.length or 0]
        while piece := await conn.read_piece_by(head, state, route, deadline):
            yield piece
        conn.finish(head)

    async def aclose(self) -> None:
        await self._pool.aclose()
