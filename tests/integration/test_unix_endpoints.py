"""The http and rpc servers on a Unix socket too, and the relay that publishes one.

A backend without network has no network interface at all: the controller reaches its
server on a Unix socket in a directory they share (``http+unix://``, ``grpc+unix://``),
and a relay (``python -m beephost_core.relay``) publishes its TCP port. Real server
processes, a real relay process, the SDK over every path.
"""

import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from beephost_client import BeepHostError, connect
from tests.integration.contract.servers import TOKEN, ServerSet
from tests.ports import free_port

KINDS = [("http", "http+unix", "http"), ("grpc", "grpc+unix", "grpc")]
#: Enough to take many reads and writes on each side of the relay.
BIG = os.urandom(3 << 20) * 4


@contextmanager
def relay(socket_path: Path) -> Iterator[int]:
    """A relay process from a free loopback port to ``socket_path``; its port."""
    port = free_port()
    log = socket_path.with_suffix(".relay.log")
    with log.open("wb") as out:  # the child keeps its own copy
        process = subprocess.Popen(
            [sys.executable, "-m", "beephost_core.relay", str(port), str(socket_path)],
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the relay did not listen"
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)
        assert process.returncode == 0, "SIGTERM ends the relay cleanly"


def _roundtrip(url: str) -> None:
    """Evaluate, stream, and move a 12 MiB file in and out through ``url``."""
    with connect(url, token=TOKEN, timeout=60) as client:
        assert client.evaluate("6 * 7") == 42
        printed = client.execute("for i in range(3): print(i)\n'done'")
        assert (printed.stdout, printed.value) == ("0\n1\n2\n", "done")
        client.files.write("big.bin", BIG)
        assert client.files.read("big.bin") == BIG


@pytest.mark.parametrize(("kind", "scheme", "tcp"), KINDS)
def test_a_server_answers_on_its_unix_socket_and_its_port(
    server_set: ServerSet, kind: str, scheme: str, tcp: str
) -> None:
    path = server_set.root / f"{kind}.sock"
    server = server_set.start(kind, TOKEN, SOCKET_PATH=path)
    # Its directory's group (the controller's) may connect; nobody else.
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
    _roundtrip(f"{scheme}://{path}")
    _roundtrip(server.url)


@pytest.mark.parametrize(("kind", "scheme", "tcp"), KINDS)
def test_the_relay_publishes_a_unix_socket_on_a_port(
    server_set: ServerSet, kind: str, scheme: str, tcp: str
) -> None:
    path = server_set.root / f"r-{kind}.sock"
    server_set.start(kind, TOKEN, SOCKET_PATH=path)
    with relay(path) as port:
        _roundtrip(f"{tcp}://127.0.0.1:{port}")
        # Connections come and go; the relay serves each, one after another.
        for _ in range(20):
            with connect(f"{tcp}://127.0.0.1:{port}", token=TOKEN) as client:
                assert client.evaluate("1 + 1") == 2


def test_a_relay_without_its_server_closes_connections_and_keeps_serving(
    server_set: ServerSet,
) -> None:
    path = server_set.root / "late.sock"
    with relay(path) as port:
        url = f"http://127.0.0.1:{port}"
        with pytest.raises(BeepHostError), connect(url, token=TOKEN) as client:
            client.evaluate("1")
        # The server comes up behind it (a backend restarting): the relay serves it.
        server_set.start("http", TOKEN, SOCKET_PATH=path)
        with connect(url, token=TOKEN) as client:
            assert client.evaluate("2 + 2") == 4
