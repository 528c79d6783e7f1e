"""The egress relay: user code in a real worker reaches the proxy's Unix socket
through 127.0.0.1:PORT, and the relay closes with the executor."""

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from beephost_core.settings import BackendSettings
from beephost_protocol import models
from tests.integration.core.conftest import MakeExecutor

pytestmark = pytest.mark.anyio

#: User code: one HTTP-proxy-shaped exchange with whatever listens on the port.
_CALL = """
import socket
with socket.create_connection(("127.0.0.1", {port}), timeout=5) as s:
    s.sendall(b"CONNECT api.allowed.test:443 HTTP/1.1\\r\\n\\r\\n")
    s.shutdown(socket.SHUT_WR)
    reply = b""
    while chunk := s.recv(4096):
        reply += chunk
reply.decode()
"""


@pytest.fixture
async def proxy_socket(tmp_path: Path) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A Unix-socket server standing for the proxy: it answers what it read."""
    path = str(tmp_path / "proxy.sock")
    seen: list[bytes] = []

    async def answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        request = await reader.read()
        seen.append(request)
        writer.write(b"HTTP/1.1 200 seen " + str(len(request)).encode() + b"\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(answer, path)
    async with server:
        yield path, seen


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_user_code_reaches_the_socket_through_the_loopback_port(
    make_executor: MakeExecutor, proxy_socket: tuple[str, list[bytes]]
) -> None:
    path, seen = proxy_socket
    port = _free_port()
    config = BackendSettings(egress_socket=path, egress_port=port).executor_config()
    executor = await make_executor(
        egress_socket=config.egress_socket, egress_port=config.egress_port
    )
    result = await executor.run(models.Execute(code=_CALL.format(port=port)))
    assert result["value"] == "HTTP/1.1 200 seen 41\r\n\r\n"
    assert seen == [b"CONNECT api.allowed.test:443 HTTP/1.1\r\n\r\n"]


async def test_the_relay_and_its_open_links_close_with_the_executor(
    make_executor: MakeExecutor, tmp_path: Path
) -> None:
    path = str(tmp_path / "proxy.sock")
    accepted = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # until the relay cuts the link
        writer.close()

    server = await asyncio.start_unix_server(hold, path)
    async with server:
        executor = await make_executor(egress_socket=path, egress_port=0)
        assert executor.egress is not None
        port = executor.egress.port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.wait_for(accepted.wait(), 5)
        assert executor.egress.links == 1
        await executor.aclose()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the link is cut
        writer.close()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)  # nobody listens


async def test_without_a_socket_there_is_no_relay(
    make_executor: MakeExecutor,
) -> None:
    executor = await make_executor()
    assert executor.egress is None


async def test_a_taken_port_fails_the_start_with_unavailable(
    make_executor: MakeExecutor, tmp_path: Path
) -> None:
    from beephost_protocol.errors import Unavailable

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(Unavailable, match="egress relay cannot listen"):
            await make_executor(
                egress_socket=str(tmp_path / "proxy.sock"), egress_port=port
            )
