"""PipeTransport: the blocking twin of the asyncio transport in ``pipe.py``.

GENERATED from ``_transports/_async/pipe.py`` by ``packages/client/scripts/unasync.py``:
do not edit (the docstrings there describe both).
"""

import collections
import contextlib
import time
from collections.abc import Iterable
from typing import Any

from beephost_client._timeout import DEFAULT_TIMEOUT, Timeout
from beephost_client._transports import _file_commands as fc
from beephost_client._transports._pipeio import Connection
from beephost_client._transports._pool import Pool
from beephost_client._transports.base import BaseTransport, SyncStream
from beephost_protocol import Command, Execute
from beephost_protocol.errors import BeepHostError

#: Upload writes sent ahead of their replies on one connection: the server writes a
#: chunk to disk while the next ones arrive (one at a time, each waited for, left it
#: idle half the time).
UPLOAD_WINDOW = 4


class PipeTransport(BaseTransport):
    """Blocking transport for ``unix://`` URLs: a pipe backend's Unix socket.

    Args:
        path: The socket's path.
        token: The server's token, sent in ``hello`` on every new connection.
        timeout: ``connect`` bounds connecting and the handshake.
        max_idle: Idle connections kept for reuse.
    """

    def __init__(
        self,
        path: str,
        *,
        token: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_idle: int = 16,
    ) -> None:
        self.path = str(path)
        self._token = token
        self._timeout = timeout
        self._pool: Pool[Connection] = Pool(self._connect, max_idle)

    def _connect(self) -> Connection:
        return Connection.open(self.path, self._token, self._timeout)

    def handle(self, command: Command, *, timeout: float) -> dict[str, Any]:
        conn = self._pool.acquire()
        try:
            deadline = time.monotonic() + timeout
            request_id = conn.start(command, deadline)
            return conn.reply(request_id, deadline)
        finally:
            self._pool.release(conn)

    def stream(self, command: Execute, *, timeout: float) -> SyncStream:
        conn = self._pool.acquire()
        try:
            deadline = time.monotonic() + timeout
            request_id = conn.start(command, deadline)
            while True:
                item = conn.item(request_id, deadline)
                yield item
                if isinstance(item, dict):
                    return
        finally:
            self._pool.release(conn)

    def upload(
        self, file: fc.Upload, chunks: Iterable[bytes], *, timeout: float
    ) -> dict[str, Any]:
        """Write ``file`` from ``chunks``: the writes go out on one connection, up to
        ``UPLOAD_WINDOW`` ahead of their replies (the server applies them in the order
        sent: pipe.md §7); each reply is waited for at most ``timeout``."""
        opened = self.handle(fc.open_upload(file), timeout=timeout)
        upload = fc.upload_id(opened)
        conn = self._pool.acquire()
        try:
            sent: collections.deque[int] = collections.deque()
            offset = 0
            for chunk in chunks:
                for piece in fc.pieces(chunk) if chunk else ():
                    if len(sent) == UPLOAD_WINDOW:
                        deadline = time.monotonic() + timeout
                        conn.reply(sent.popleft(), deadline, keep=sent)
                    command = fc.write(upload, offset, piece)
                    sent.append(conn.start(command, time.monotonic() + timeout))
                    offset += len(piece)
            while sent:
                deadline = time.monotonic() + timeout
                conn.reply(sent.popleft(), deadline, keep=sent)
            deadline = time.monotonic() + timeout
            committed = conn.start(fc.commit(upload), deadline)
            return conn.reply(committed, deadline)
        except BaseException:
            with contextlib.suppress(BeepHostError):
                self.handle(fc.abort(upload), timeout=timeout)
            raise
        finally:
            # A failure leaves the replies held for writes no one will await: the
            # connection may be reused, they must not stay with it.
            conn.early.clear()
            self._pool.release(conn)

    def close(self) -> None:
        self._pool.close()
