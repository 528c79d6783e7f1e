"""splice.Link: two real socket pairs joined through the kernel, as the relay joins a
client's TCP connection to its backend's Unix socket."""

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from beephost_core.splice import PIPE_BYTES, Link

TIMEOUT = 10.0
#: The TCP buffers the backpressure test fixes (the kernel doubles them): autotuned,
#: loopback's grow to tcp_wmem's and tcp_rmem's maxima (4 and 32 MiB on some
#: machines), room for all its bytes before the link is even in the way.
TCP_BUFFER_BYTES = 64 << 10


@contextmanager
def _joined(
    tcp_buffer_bytes: int | None = None,
) -> Iterator[tuple[socket.socket, socket.socket, Link]]:
    """A client end and a server end, their other ends joined by a ``Link`` running in
    a thread (TCP on loopback on the client's side, a Unix socket pair on the
    server's); ``tcp_buffer_bytes`` fixes the TCP connection's send and receive
    buffers (set before it connects: the accepted end inherits its listener's)."""
    listener = socket.socket()
    client = socket.socket()
    if tcp_buffer_bytes is not None:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, tcp_buffer_bytes)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, tcp_buffer_bytes)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client.settimeout(TIMEOUT)
    client.connect(listener.getsockname())
    relayed_client, _ = listener.accept()
    listener.close()
    relayed_server, server = socket.socketpair()
    server.settimeout(TIMEOUT)
    closed: list[Link] = []
    link = Link(relayed_client, relayed_server, on_closed=closed.append)
    running = threading.Thread(target=link.run, daemon=True)
    running.start()
    try:
        yield client, server, link
    finally:
        link.cut()
        running.join(TIMEOUT)
        client.close()
        server.close()
    assert not running.is_alive()
    # The link closed both of its sockets when it ended, and said so.
    assert relayed_client.fileno() == -1
    assert relayed_server.fileno() == -1
    assert closed == [link]


def _read_all(sock: socket.socket) -> bytes:
    received = bytearray()
    while chunk := sock.recv(1 << 20):
        received += chunk
    return bytes(received)


def test_bytes_cross_both_ways_whole_and_in_order() -> None:
    up, down = os.urandom(9 * PIPE_BYTES + 12345), os.urandom(3 * PIPE_BYTES + 7)

    def send_and_close(sock: socket.socket, data: bytes) -> None:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)

    with _joined() as (client, server, _), ThreadPoolExecutor(4) as pool:
        sent = [
            pool.submit(send_and_close, client, up),
            pool.submit(send_and_close, server, down),
        ]
        got_up = pool.submit(_read_all, server)
        got_down = pool.submit(_read_all, client)
        for future in sent:
            future.result(30)
        assert hashlib.sha256(got_up.result(30)).digest() == hashlib.sha256(up).digest()
        assert (
            hashlib.sha256(got_down.result(30)).digest()
            == hashlib.sha256(down).digest()
        )


def test_a_half_close_is_passed_on_and_the_other_way_still_flows() -> None:
    with _joined() as (client, server, _):
        client.sendall(b"request")
        client.shutdown(socket.SHUT_WR)
        assert _read_all(server) == b"request"
        # The server answers after the client's end of stream, as HTTP/1.0 does.
        server.sendall(b"reply")
        server.shutdown(socket.SHUT_WR)
        assert _read_all(client) == b"reply"


def test_a_slow_reader_holds_the_writer_back_and_loses_nothing() -> None:
    data = os.urandom(16 * PIPE_BYTES)
    joined = _joined(TCP_BUFFER_BYTES)
    with joined as (client, server, _), ThreadPoolExecutor(1) as pool:
        sending = pool.submit(client.sendall, data)
        time.sleep(0.3)
        # Nobody reads the server's end: the buffers on the way fill and the client's
        # send waits (backpressure), rather than the link holding it all.
        assert not sending.done()
        received = bytearray()
        while len(received) < len(data):
            received += server.recv(1 << 16)
            time.sleep(0.0005)  # a slow reader
        sending.result(TIMEOUT)
    assert bytes(received) == data


def test_a_reset_on_one_side_closes_the_other() -> None:
    with _joined() as (client, server, link):
        # SO_LINGER 0: close() sends a reset, as a crashed client's kernel does.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        client.close()
        assert _read_all(server) == b""
        assert link.closed.wait(TIMEOUT)


def test_a_cut_ends_both_ways_while_they_wait() -> None:
    with _joined() as (client, server, link):
        client.sendall(b"ping")
        assert server.recv(16) == b"ping"
        link.cut()  # both directions are blocked in a read
        assert link.closed.wait(TIMEOUT)
        assert _read_all(server) == b""
        assert _read_all(client) == b""
