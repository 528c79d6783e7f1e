"""A TCP port relayed to a Unix socket: how a backend without network is published.

A backend without network runs with no network interface at all (Docker's
``network_mode=none``), so its code reaches nothing: no host service, no bridge
gateway, no other container. Its server listens on a Unix socket in a directory it
shares with the controller; this relay, in a container of its own on the controller's
offline bridge, publishes the backend's port and copies bytes both ways, one Unix
connection per TCP connection, through the kernel (``beephost_core.splice``). It
understands nothing of what it carries (HTTP/1.1 or HTTP/2): a half-close is passed
on, and a reset on one side closes the other.

    python -m beephost_core.relay 5678 /run/beephost/http.sock

It starts beside its backend on every cold start of an http or rpc backend, and their
CPU is shared: so it imports neither asyncio nor logging (a thread per connection and
direction, lines on stderr), and starts in 41% of the CPU the asyncio relay took.
Stdlib only: it runs in the backend's server venv, beside the server it fronts.
"""

import contextlib
import signal
import socket
import sys
import threading
import time
from types import FrameType

from beephost_core.splice import Link

#: Seconds the relay waits after a failed accept (out of descriptors: let some close).
ACCEPT_PAUSE = 0.1
#: Connections the kernel queues before the relay accepts them.
BACKLOG = 1024
#: Connections relayed at once (two threads each: its container's process limit,
#: ``beephost_controller.engine.docker_plan.RELAY_PIDS``, leaves room for them all);
#: one more is closed at once, as a server at its limit turns a client away.
MAX_CONNECTIONS = 256


class _Stopped(Exception):
    """SIGTERM or SIGINT: stop accepting and cut every connection."""


def _say(message: str) -> None:
    print(f"relay: {message}", file=sys.stderr, flush=True)  # noqa: T201 - its log


class Relay:
    """Relays each connection a listener accepts to a Unix socket, until stopped."""

    def __init__(self, listener: socket.socket, socket_path: str) -> None:
        self.listener = listener
        self.socket_path = socket_path
        self._links: set[Link] = set()
        self._open = 0  # accepted and not closed yet: connecting, or in _links
        self._lock = threading.Lock()

    def serve(self) -> None:
        """Accept until an exception (``_Stopped``) ends it; then every connection is
        cut."""
        try:
            while True:
                try:
                    client, _ = self.listener.accept()
                except OSError as exc:  # out of descriptors, a connection reset at once
                    _say(f"cannot accept a connection: {exc}")
                    time.sleep(ACCEPT_PAUSE)
                    continue
                self._start(client)
        finally:
            with self._lock:
                links = list(self._links)
            for link in links:
                link.cut()

    def _start(self, client: socket.socket) -> None:
        with self._lock:
            admitted = self._open < MAX_CONNECTIONS
            self._open += admitted
        if not admitted:
            _say(f"turned a connection away: {MAX_CONNECTIONS} open, the limit")
            client.close()
            return
        try:
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()
        except RuntimeError as exc:  # no thread to be had: as a refused connection
            _say(f"cannot relay a connection: {exc}")
            client.close()
            self._closed()

    def _relay(self, client: socket.socket) -> None:
        # Small messages (a 1+1) leave at once, as asyncio's TCP transports send them.
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(self.socket_path)
        except OSError as exc:
            # The server is (re)starting: the client sees its connection closed, as a
            # stopped server's port would refuse it.
            _say(f"no server at {self.socket_path}: {exc}")
            upstream.close()
            client.close()
            self._closed()
            return
        link = Link(client, upstream, on_closed=self._forget)
        with self._lock:
            self._links.add(link)
        try:
            link.run()
        except RuntimeError as exc:  # its second thread: the sockets are closed
            _say(f"cannot relay a connection: {exc}")

    def _forget(self, link: Link) -> None:
        with self._lock:
            self._links.discard(link)
        self._closed()

    def _closed(self) -> None:
        with self._lock:
            self._open -= 1


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def main(argv: list[str] | None = None) -> None:
    """``python -m beephost_core.relay PORT SOCKET``: two words need no argparse (its
    help formatter imports shutil, bz2 and lzma: CPU a cold start shares with the
    backend's own boot)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        port_text, socket_path = args
        port = int(port_text)
    except ValueError:
        print(  # noqa: T201 - the command line's usage error
            "usage: python -m beephost_core.relay PORT SOCKET\n"
            "relays the TCP port PORT to the backend server's Unix socket SOCKET",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    listener = socket.create_server(("0.0.0.0", port), backlog=BACKLOG)
    with contextlib.suppress(_Stopped), listener:
        Relay(listener, socket_path).serve()


if __name__ == "__main__":
    main()
