"""A loopback TCP link with a long round trip that delivers in bursts, for flow control."""

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, Self, TypeVar

T = TypeVar("T")


class BurstLink:
    """Forwards ``127.0.0.1:<port>`` to ``127.0.0.1:<target_port>``, on a thread.

    Each direction holds its bytes and hands them on in one write every ``interval``
    seconds: what a peer may send ahead arrives at once, as over a long, fast link,
    and a round trip (an HTTP/2 PING's, which grpc's BDP probe times) takes at least
    ``interval``.
    """

    def __init__(self, target_port: int, interval: float) -> None:
        self.target_port = target_port
        self.interval = interval
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    def __enter__(self) -> Self:
        self._thread.start()
        listening = asyncio.start_server(self._connected, "127.0.0.1", 0)
        self._server = self._run(listening)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._run(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        for relay in self._relays:
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        await self._server.wait_closed()

    async def _connected(
        self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter
    ) -> None:
        # The relay is a task of its own: asyncio reports a cancelled callback task
        # as an error, and the link cancels what still runs when it closes.
        relay = asyncio.create_task(self._relay(client, to_client))
        self._relays.add(relay)
        relay.add_done_callback(self._relays.discard)

    async def _relay(
        self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter
    ) -> None:
        try:
            server, to_server = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
            try:
                await asyncio.gather(
                    self._carry(client, to_server), self._carry(server, to_client)
                )
            finally:
                to_server.close()
        except ConnectionError:
            pass  # a peer went away: the other one sees its connection close
        finally:
            to_client.close()

    async def _carry(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        """``source``'s bytes to ``sink``, in one write per interval, until EOF."""
        held = bytearray()
        ended = asyncio.Event()

        async def hold() -> None:
            while data := await source.read(1 << 16):
                held.extend(data)
            ended.set()

        holder = asyncio.create_task(hold())
        try:
            while not ended.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), self.interval)
                if held:
                    sink.write(bytes(held))
                    held.clear()
                    await sink.drain()
        finally:
            holder.cancel()
            sink.close()
