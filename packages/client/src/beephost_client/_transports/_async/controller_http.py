"""AsyncHTTPControllerTransport: the controller's REST API over keep-alive HTTP/1.1.

This file is the source of ``_transports/_sync/controller_http.py``
(HTTPControllerTransport), which ``packages/client/scripts/unasync.py`` generates from
it. It speaks through the connections of ``_httpio``, the same ones as the backend's
HTTP transport, over TCP, TLS or (``unix:///path``) a Unix socket.
"""

# ruff: noqa: ASYNC109  # `timeout` bounds the whole exchange; deadlines stay explicit

import time
from collections.abc import AsyncIterator

from beephost_client._timeout import DEFAULT_TIMEOUT, Timeout
from beephost_client._transports import _http11
from beephost_client._transports._endpoint import Endpoint, timed_out
from beephost_client._transports._httpio import AsyncConnection
from beephost_client._transports._pool import AsyncPool
from beephost_client._transports.controller import (
    DEFAULT_CONTROLLER_URL,
    AsyncControllerTransport,
    Request,
    Response,
)

_NO_BODY = frozenset({204, 304})


class AsyncHTTPControllerTransport(AsyncControllerTransport):
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
        self._endpoint = Endpoint(url, token, unix=True)
        self._timeout = timeout
        self._pool: AsyncPool[AsyncConnection] = AsyncPool(self._connect, max_idle=4)

    async def _connect(self) -> AsyncConnection:
        return await AsyncConnection.open(self._endpoint, self._timeout)

    async def handle_async(self, request: Request, *, timeout: float) -> Response:
        route = _http11.Route(
            request.method, self._endpoint.prefix + request.path, request.body, None
        )
        deadline = time.monotonic() + timeout
        conn = await self._pool.acquire()
        try:
            head = await conn.send(route, deadline)
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
            self._body(conn, head, route, deadline, timeout),
            on_close=lambda: self._pool.release(conn),
        )

    @staticmethod
    async def _body(
        conn: AsyncConnection,
        head: _http11.Head,
        route: _http11.Route,
        deadline: float,
        timeout: float,
    ) -> AsyncIterator[bytes]:
        state = [head.length or 0]
        try:
            while piece := await conn.read_piece(head, state, deadline):
                yield piece
        except TimeoutError as exc:
            raise timed_out(route, timeout, exc) from exc
        conn.finish(head)

    async def aclose(self) -> None:
        await self._pool.aclose()
