"""One asyncio stream connection relayed to a Unix socket or a TCP address.

The egress relays (``beephost_core.egress_relay``), the egress proxy's socket and the
tests' TLS relays copy a connection's bytes both ways with ``relay_connection``. It
understands nothing of what it carries: a half-close is passed on, and a reset on one
side closes the other. (A backend's published port has a relay of its own without
asyncio: ``beephost_core.relay``.) Stdlib only.
"""

import asyncio
import contextlib
import logging

logger = logging.getLogger(__name__)

#: Bytes read per copy: large enough that a 16 MiB upload is few wake-ups.
CHUNK = 256 << 10
#: Bytes a writer may buffer before its reader waits (backpressure, both ways).
HIGH_WATER = 1 << 20


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
