"""splice_both: two real socket pairs joined through the kernel, as the relay joins a
client's TCP connection to its backend's Unix socket."""

import asyncio
import hashlib
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from beephost_core.splice import PIPE_BYTES, splice_both


@asynccontextmanager
async def _joined() -> AsyncIterator[tuple[socket.socket, socket.socket]]:
    """A client end and a server end, their other ends joined by ``splice_both``
    (TCP on loopback on the client's side, a Unix socket pair on the server's)."""
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    client = socket.socket()
    client.setblocking(False)
    accepting = asyncio.ensure_future(loop.sock_accept(listener))
    await loop.sock_connect(client, listener.getsockname())
    relayed_client, _ = await accepting
    listener.close()
    relayed_server, server = socket.socketpair()
    server.setblocking(False)
    link = asyncio.ensure_future(splice_both(relayed_client, relayed_server))
    try:
        yield client, server
    finally:
        link.cancel()
        await asyncio.gather(link, return_exceptions=True)
        client.close()
        server.close()
    # splice_both closed both of its sockets when it ended.
    assert relayed_client.fileno() == -1
    assert relayed_server.fileno() == -1


async def _read_all(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    received = bytearray()
    while chunk := await loop.sock_recv(sock, 1 << 20):
        received += chunk
    return bytes(received)


async def test_bytes_cross_both_ways_whole_and_in_order() -> None:
    loop = asyncio.get_running_loop()
    up, down = os.urandom(9 * PIPE_BYTES + 12345), os.urandom(3 * PIPE_BYTES + 7)
    async with _joined() as (client, server):

        async def send_and_close(sock: socket.socket, data: bytes) -> None:
            await loop.sock_sendall(sock, data)
            sock.shutdown(socket.SHUT_WR)

        _, _, got_up, got_down = await asyncio.wait_for(
            asyncio.gather(
                send_and_close(client, up),
                send_and_close(server, down),
                _read_all(server),
                _read_all(client),
            ),
            30,
        )
    assert hashlib.sha256(got_up).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(got_down).digest() == hashlib.sha256(down).digest()


async def test_a_half_close_is_passed_on_and_the_other_way_still_flows() -> None:
    loop = asyncio.get_running_loop()
    async with _joined() as (client, server):
        await loop.sock_sendall(client, b"request")
        client.shutdown(socket.SHUT_WR)
        assert await asyncio.wait_for(_read_all(server), 10) == b"request"
        # The server answers after the client's end of stream, as HTTP/1.0 does.
        await loop.sock_sendall(server, b"reply")
        server.shutdown(socket.SHUT_WR)
        assert await asyncio.wait_for(_read_all(client), 10) == b"reply"


async def test_a_slow_reader_holds_the_writer_back_and_loses_nothing() -> None:
    loop = asyncio.get_running_loop()
    data = os.urandom(16 * PIPE_BYTES)
    async with _joined() as (client, server):
        sending = asyncio.ensure_future(loop.sock_sendall(client, data))
        await asyncio.sleep(0.3)
        # Nobody reads the server's end: the buffers on the way fill and the client's
        # send waits (backpressure), rather than the relay holding it all.
        assert not sending.done()
        received = bytearray()
        while len(received) < len(data):
            received += await asyncio.wait_for(loop.sock_recv(server, 1 << 16), 10)
            await asyncio.sleep(0)  # a slow reader
        await asyncio.wait_for(sending, 10)
    assert bytes(received) == data


async def test_a_reset_on_one_side_closes_the_other() -> None:
    async with _joined() as (client, server):
        # SO_LINGER 0: close() sends a reset, as a crashed client's kernel does.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        client.close()
        assert await asyncio.wait_for(_read_all(server), 10) == b""
