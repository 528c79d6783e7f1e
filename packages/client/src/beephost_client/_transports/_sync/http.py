"""HTTPTransport: the blocking twin of the asyncio transport in ``http.py``.

GENERATED from ``_transports/_async/http.py`` by ``packages/client/scripts/unasync.py``:
do not edit (the docstrings there describe both).
"""

import time
from collections.abc import Iterable, Iterator
from typing import Any

from beephost_client._exceptions import InvalidArgument
from beephost_client._timeout import DEFAULT_TIMEOUT, Timeout
from beephost_client._transports import _http11
from beephost_client._transports._endpoint import MAX_STREAM_LINE, Endpoint, timed_out
from beephost_client._transports._file_commands import Upload
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

    def upload(
        self, file: Upload, chunks: Iterable[bytes], *, timeout: float
    ) -> dict[str, Any]:
        """PUT the file's bytes as they come: with a Content-Length when its size is
        known, else chunked; the body is sent only after the server's ``100 Continue``,
        so a refusal (quota, a taken name) costs no upload."""
        endpoint = self._endpoint
        size = file.size
        target = _http11.file_target(endpoint.prefix, file.path)
        if not file.overwrite:
            target += "?overwrite=false"
        route = _http11.Route("PUT", target, None, None)
        conn = self._pool.acquire()
        try:
            try:
                conn.write(endpoint.upload_head(target, size), _after(timeout))
                head = conn.read_head(_after(timeout))
                if head.status == 100:
                    sent = 0
                    for chunk in chunks:
                        if chunk:
                            piece = (
                                chunk
                                if size is not None
                                else _http11.chunk_frame(chunk)
                            )
                            conn.write(piece, _after(timeout))
                            sent += len(chunk)
                    if size is not None and sent != size:
                        raise InvalidArgument(
                            f"the file's size changed while it was sent: {sent} "
                            f"bytes, not {size}"
                        )
                    if size is None:
                        conn.write(_http11.chunk_frame(b""), _after(timeout))
                    head = conn.read_head(_after(timeout))
                    body = conn.read_body(head, _after(timeout))
                else:  # refused before the body: the connection cannot be reused
                    body = conn.read_body(head, _after(timeout))
                    conn.clean = False
            except TimeoutError as exc:
                raise timed_out(route, timeout, exc) from exc
        finally:
            self._pool.release(conn)
        return _http11.result_or_error(head.status, body)

    def download(
        self, path: str, *, offset: int, length: int | None, timeout: float
    ) -> Iterator[bytes]:
        """GET the file's bytes (a Range for part of it), yielded as they arrive."""
        if length == 0:
            return
        endpoint = self._endpoint
        route = _http11.Route(
            "GET",
            _http11.file_target(endpoint.prefix, path),
            None,
            None,
            tuple(_http11.range_header(offset, length).items()),
        )
        conn = self._pool.acquire()
        try:
            try:
                head = conn.send(route, _after(timeout))
                if head.status not in (200, 206):
                    body = conn.read_body(head, _after(timeout))
                    if head.status == _RANGE_PAST_THE_END:
                        return  # an offset at or past the end: nothing to read
                    raise _http11.error_of(head.status, body)
                state = [head.length or 0]
                while piece := conn.read_piece(head, state, _after(timeout)):
                    yield piece
                conn.finish(head)
            except TimeoutError as exc:
                raise timed_out(route, timeout, exc) from exc
        finally:
            self._pool.release(conn)

    def close(self) -> None:
        self._pool.close()


_RANGE_PAST_THE_END = 416


def _after(seconds: float) -> float:
    """The deadline of one step of a transfer (the transfer itself has none)."""
    return time.monotonic() + seconds
