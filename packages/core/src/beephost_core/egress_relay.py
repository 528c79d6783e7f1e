"""The sandbox's one way out: a loopback port relayed to the egress proxy's socket.

A backend whose egress policy is an allow-list runs with no network interface at all;
the controller mounts the egress proxy's Unix socket into it (read-only directory).
User code reaches the proxy through ``HTTP_PROXY=http://...@127.0.0.1:PORT``: this
listener, owned by the executor, copies each loopback connection to the socket. It
decides nothing: the proxy outside the sandbox authenticates and filters.
"""

import asyncio
import contextlib
import logging

from beephost_core.stream_relay import CHUNK, relay_connection

logger = logging.getLogger(__name__)


class EgressRelay:
    """``127.0.0.1:port`` → ``socket_path``, one Unix connection per TCP connection."""

    def __init__(self, socket_path: str, port: int, host: str = "127.0.0.1") -> None:
        self.socket_path = socket_path
        self.port = port
        self.host = host
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen (``port`` 0: a free one, then read back into ``port``).

        Raises:
            OSError: The port cannot be bound.
        """
        self._server = await asyncio.start_server(
            self._link, self.host, self.port, limit=CHUNK, backlog=256
        )
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("egress relay on %s:%d", self.host, self.port)

    async def _link(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._links.add(task)
        try:
            await relay_connection(reader, writer, self.socket_path)
        finally:
            if task is not None:
                self._links.discard(task)

    @property
    def links(self) -> int:
        """Connections being relayed now."""
        return len(self._links)

    async def aclose(self) -> None:
        """Stop listening and cut every open link."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        links = list(self._links)
        for task in links:
            task.cancel()
        await asyncio.gather(*links, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(OSError):
                await server.wait_closed()
