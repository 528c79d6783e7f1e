"""HTTPControllerTransport: the blocking twin of the asyncio transport in ``controller_http.py``.

GENERATED from ``_transports/_async/controller_http.py`` by ``packages/client/scripts/unasync.py``:
do not edit (the docstrings there describe both).
"""

import time
from collections.abc import Iterator

from beephost_client._timeout import DEFAULT_TIMEOUT, Timeout
from beephost_client._transports import _http11
from beephost_client._transports._endpoint import Endpoint, timed_out
from beephost_client._transports._httpio import Connection
from beephost_client._transports._pool import Pool
from beephost_client._transports.controller import (
    DEFAULT_CONTROLLER_URL,
    ControllerTransport,
    Request,
    Response,
)

_NO_BODY = frozenset({204, 304})


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
        self._endpoint = Endpoint(url, token, unix=True)
        self._timeout = timeout
        self._pool: Pool[Connection] = Pool(self._connect, max_idle=4)

    def _connect(self) -> Connection:
        return Connection.open(self._endpoint, self._timeout)

    def handle(self, request: Request, *, timeout: float) -> Response:
        route = _http11.Route(
            request.method, self._endpoint.prefix + request.path, request.body, None
        )
        deadline = time.monotonic() + timeout
        conn = self._pool.acquire()
        try:
            head = conn.send(route, deadline)
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
    def _body(
        conn: Connection,
        head: _http11.Head,
        route: _http11.Route,
        deadline: float,
        timeout: float,
    ) -> Iterator[bytes]:
        state = [head.length or 0]
        try:
            while piece := conn.read_piece(head, state, deadline):
                yield piece
        except TimeoutError as exc:
            raise timed_out(route, timeout, exc) from exc
        conn.finish(head)

    def close(self) -> None:
        self._pool.close()
