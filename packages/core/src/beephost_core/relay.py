"""A TCP port relayed to a Unix socket: how a backend without network is published.

A backend without network runs with no network interface at all (Docker's
``network_mode=none``), so its code reaches nothing: no host service, no bridge
gateway, no other container. Its server listens on a Unix socket in a directory it
shares with the controller; this relay, in a container of its own on the controller's
offline bridge, publishes the backend's port and copies bytes both ways, one Unix
connection per TCP connection, through the kernel (``beephost_core.splice``). It
understands nothing of what it carries (HTTP/1.1 or HTTP/2): a half-close is passed
on, and a reset on one side closes the other. ``relay_connection`` does the same for
streams (the egress relays, TLS in the tests' relays).

    python -m beephost_core.relay 5678 /run/beephost/http.sock

Stdlib only: it runs in the backend's server venv, beside the server it fronts.
"""

import asyncio
import contextlib
import logging
import signal
import socket
import sys

from beephost_core.splice import splice_both

logger = logging.getLogger(__name__)

#: Bytes read per copy: large enough that a 16 MiB upload is few wake-ups.
CHUNK = 256 << 10
#: Bytes a writer may buffer before its reader waits (backpressure, both ways).
HIGH_WATER = 1 << 20
#: Seconds the relay waits after a failed accept (out of descriptors: let some close).
ACCEPT_PAUSE = 0.1


async def _copy(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
    """Copy until EOF, then pass the half-close on."""
    while chunk := await source.read(CHUNK):
        target.write(chunk)
        await target.drain()
    if target.can_write_eof():
        target.write_eof()


async def relay_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    socket_path: str | tuple[str, int],
) -> None:
    """Serve one client connection: connect to ``socket_path`` (a Unix socket, or a
    ``(host, port)`` pair: the egress proxy's image relays its Unix socket to
    mitmdump's loopback port) and copy both ways until both sides have closed, or
    either fails."""
    writer.transport.set_write_buffer_limits(HIGH_WATER)
    try:
        if isinstance(socket_path, tuple):
            up_reader, up_writer = await asyncio.open_connection(
                *socket_path, limit=CHUNK
            )
        else:
            up_reader, up_writer = await asyncio.open_unix_connection(
                socket_path, limit=CHUNK
            )
    except OSError as exc:
        # The server is (re)starting: the client sees its connection closed, as a
        # stopped server's port would refuse it.
        logger.info("no server at %s: %s", socket_path, exc)
        writer.close()
        return
    up_writer.transport.set_write_buffer_limits(HIGH_WATER)
    copies = [
        asyncio.create_task(_copy(reader, up_writer)),
        asyncio.create_task(_copy(up_reader, writer)),
    ]
    try:
        for task in asyncio.as_completed(copies):
            await task  # a reset on either side raises: both are closed below
    except (ConnectionError, OSError):
        pass
    finally:
        for task in copies:
            task.cancel()
        for side in (up_writer, writer):
            side.close()
            with contextlib.suppress(ConnectionError, OSError):
                await side.wait_closed()


async def serve(listener: socket.socket, socket_path: str) -> None:
    """Relay each connection ``listener`` accepts to ``socket_path`` through the kernel
    (``beephost_core.splice``), until cancelled: then every connection is cut."""
    loop = asyncio.get_running_loop()
    listener.setblocking(False)
    links: set[asyncio.Task[None]] = set()
    try:
        while True:
            try:
                client, _ = await loop.sock_accept(listener)
            except OSError as exc:  # out of descriptors, a connection reset at once
                logger.warning("cannot accept a connection: %s", exc)
                await asyncio.sleep(ACCEPT_PAUSE)
                continue
            link = asyncio.create_task(_link(client, socket_path))
            links.add(link)
            link.add_done_callback(links.discard)
    finally:
        for link in links:
            link.cancel()


async def _link(client: socket.socket, socket_path: str) -> None:
    # Small messages (a 1+1) leave at once, as asyncio's own TCP transports send them.
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    upstream.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(upstream, socket_path)
    except OSError as exc:
        # The server is (re)starting: the client sees its connection closed, as a
        # stopped server's port would refuse it.
        logger.info("no server at %s: %s", socket_path, exc)
        upstream.close()
        client.close()
        return
    await splice_both(client, upstream)


async def _main(port: int, socket_path: str) -> None:
    listener = socket.create_server(("0.0.0.0", port), backlog=1024)
    serving = asyncio.create_task(serve(listener, socket_path))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    serving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving
    listener.close()


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
    logging.basicConfig(level=logging.INFO, format="relay: %(message)s")
    asyncio.run(_main(port, socket_path))


if __name__ == "__main__":
    main()
