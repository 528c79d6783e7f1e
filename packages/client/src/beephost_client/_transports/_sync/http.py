"""HTTPTransport: the blocking twin of the asyncio transport in ``http.py``.

GENERATED from ``_transports/_async/http.py`` by ``packages/client/scripts/unasync.py``:
do not edit (the docstrings there describe both).
"""

import time
from typing import Any

from beephost_client._config import DEFAULT_TIMEOUT, Timeout
from beephost_client._transports import _http11
from beephost_client._transports._endpoint import MAX_STREAM_LINE, Endpoint, timed_out
from beephost_client._transports._httpio import Connection
from beephost_client._transports._pool import Pool
from beephost_client._transports.base import BaseTransport, SyncStream, new_lease
from beephost_protocol import Command, Execute, LineDecoder, LineTooLong
from beephost_protocol.errors import InternalError


class HTTPTransport(BaseTransport):
    """Blocking transport for ``http://`` and ``https://`` URLs (the HTTP backend).

    Args:
        url: The backend's base URL; a path prefix is kept (behind a reverse proxy).
        token: The server's token, sent as ``Authorization: Bearer``.
        timeout: ``connect`` bounds connecting.
        max_idle: Idle keep-alive connections kept for reuse.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_idle: int = 16,
    ) -> None:
        self.lease = new_lease()
        self._endpoint = Endpoint(url, token, self.lease)
        self._timeout = timeout
        self._pool: Pool[Connection] = Pool(self._connect, max_idle)

    def _connect(self) -> Connection:
        return Connection.open(self._endpoint, self._timeout)

    def handle(self, command: Command, *, timeout: float) -> dict[str, Any]:
        route = _http11.route(command, self._endpoint.prefix)
        deadline = time.monotonic() + timeout
        conn = self._pool.acquire()
        try:
            head = conn.send(route, deadline)
            body = conn.read_body(head, deadline)
        except TimeoutError as exc:
            raise timed_out(route, timeout, exc) from exc
        finally:
            self._pool.release(conn)
        return _http11.result_or_error(head.status, body)

    def stream(self, command: Execute, *, timeout: float) -> SyncStream:
        route = _http11.route(command, self._endpoint.prefix)
        deadline = time.monotonic() + timeout
        conn = self._pool.acquire()
        try:
            try:
                head = conn.send(route, deadline)
                if head.status != 200:
                    body = conn.read_body(head, deadline)
                    raise _http11.error_of(head.status, body)
                decoder = LineDecoder(MAX_STREAM_LINE)
                state = [head.length or 0]
                while True:
                    piece = conn.read_piece(head, state, deadline)
                    if not piece:
                        raise self._endpoint.lost(
                            ConnectionResetError("the stream ended without a result")
                        )
                    for line in decoder.feed(piece):
                        if isinstance(line, LineTooLong):
                            raise InternalError(
                                f"a stream line exceeds {MAX_STREAM_LINE} bytes"
                            )
                        item = _http11.stream_item(line)
                        if item is None:
                            continue
                        if isinstance(item, dict):
                            while conn.read_piece(head, state, deadline):
                                pass  # to the body's end: the connection is reusable
                            conn.finish(head)
                        yield item
                        if isinstance(item, dict):
                            return
            except TimeoutError as exc:
                raise timed_out(route, timeout, exc) from exc
        finally:
            self._pool.release(conn)

    def close(self) -> None:
        self._pool.close()
