"""Two connected sockets joined both ways through the kernel (``os.splice``).

Each direction runs in a thread of its own: it moves its source's bytes into a pipe and
from the pipe into the other socket, so they never enter Python, and its blocking
splices wait for bytes, or for room at the target (backpressure), with the GIL
released. It understands nothing of what it carries: an end of stream is passed on as
a half-close, and an error on either side cuts both. Threads rather than asyncio: the
relay that uses it starts beside its backend's server on a cold start, and importing
asyncio was 59% of the relay's CPU then. Linux only, stdlib only.
"""

import contextlib
import fcntl
import os
import socket
import threading
from collections.abc import Callable

#: Bytes a direction's pipe holds: as much as one splice moves.
PIPE_BYTES = 256 << 10


class Link:
    """``left`` and ``right`` joined both ways (``run``) until both ends of stream
    were passed on, or either side failed, or ``cut``; then both sockets are closed
    and ``on_closed`` is called with the link."""

    def __init__(
        self,
        left: socket.socket,
        right: socket.socket,
        on_closed: Callable[["Link"], None] | None = None,
    ) -> None:
        self.left, self.right = left, right
        self._on_closed = on_closed
        self._lock = threading.Lock()
        self._running = 2
        self.closed = threading.Event()

    def run(self) -> None:
        """Both directions, one in this thread and one in a daemon thread; returns
        when both have ended and the sockets are closed.

        Raises:
            RuntimeError: No thread could be started (the sockets are closed).
        """
        try:
            threading.Thread(
                target=self._direction, args=(self.right, self.left), daemon=True
            ).start()
        except RuntimeError:
            self._running = 1
            self.cut()
            self._ended()
            raise
        self._direction(self.left, self.right)
        self.closed.wait()

    def cut(self) -> None:
        """End both directions now; their threads close the sockets."""
        for side in (self.left, self.right):
            with contextlib.suppress(OSError):
                side.shutdown(socket.SHUT_RDWR)

    def _direction(self, source: socket.socket, target: socket.socket) -> None:
        try:
            _copy(source.fileno(), target.fileno())
            # The peer may be gone already; the other direction finds out itself.
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)
        except OSError:
            self.cut()
        finally:
            self._ended()

    def _ended(self) -> None:
        """A direction ended: the last one closes both sockets."""
        with self._lock:
            self._running -= 1
            last = self._running == 0
        if last:
            self.left.close()
            self.right.close()
            self.closed.set()
            if self._on_closed is not None:
                self._on_closed(self)


def _copy(source: int, target: int) -> None:
    """Move ``source``'s bytes to ``target`` until its end of stream.

    Raises:
        OSError: Either side failed (a reset, a target that was shut down).
    """
    pipe_out, pipe_in = os.pipe2(os.O_CLOEXEC)
    try:
        # Refused past the owner's pipe quota: the default size still works.
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe_in, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        # The pipe is empty before each read: the read waits only for the source.
        while moved := os.splice(source, pipe_in, PIPE_BYTES, flags=os.SPLICE_F_MOVE):
            while moved:
                moved -= os.splice(pipe_out, target, moved, flags=os.SPLICE_F_MOVE)
    finally:
        os.close(pipe_out)
        os.close(pipe_in)
