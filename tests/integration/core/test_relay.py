"""The port relay (``python -m beephost_core.relay``) as a real process in front of a
real Unix-socket echo server: its connection limit, and a SIGTERM that cuts every
connection and ends it cleanly. (The backends behind real relays: test_unix_endpoints,
and every http and rpc backend the controller starts without network.)"""

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from beephost_controller.engine.docker_plan import RELAY_PIDS
from beephost_core.relay import MAX_CONNECTIONS
from tests.ports import free_port

TIMEOUT = 10.0


@contextmanager
def _echo_server(path: Path) -> Iterator[None]:
    """A Unix socket that echoes each connection's bytes, a thread per connection."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(MAX_CONNECTIONS + 8)

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(1 << 16):
                conn.sendall(data)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()


@contextmanager
def _relay(socket_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "beephost_core.relay", str(port), str(socket_path)],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the relay did not listen"
                time.sleep(0.02)
        yield process, port
    finally:
        process.kill()
        process.wait(TIMEOUT)
        assert process.stderr is not None
        process.stderr.close()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), TIMEOUT)


def _echoes(conn: socket.socket, data: bytes) -> bool:
    conn.sendall(data)
    received = b""
    while len(received) < len(data):
        chunk = conn.recv(1 << 16)
        if not chunk:
            return False
        received += chunk
    return received == data


def test_the_relay_holds_its_limit_of_connections_and_turns_one_more_away(
    tmp_path: Path,
) -> None:
    path = tmp_path / "echo.sock"
    with _echo_server(path), _relay(path) as (_, port), ExitStack() as stack:
        open_ones = [
            stack.enter_context(_connect(port)) for _ in range(MAX_CONNECTIONS)
        ]
        for index, conn in enumerate(open_ones):
            assert _echoes(conn, b"n%d" % index)  # each relayed, all at once
        extra = stack.enter_context(_connect(port))
        assert extra.recv(16) == b""  # closed at once: the limit
        open_ones.pop().close()
        deadline = time.monotonic() + TIMEOUT
        while True:  # the relay counts the closed one out when it notices it
            retry = stack.enter_context(_connect(port))
            try:
                if _echoes(retry, b"again"):
                    break
            except ConnectionError:
                pass
            assert time.monotonic() < deadline, "a freed slot was never reused"
            time.sleep(0.05)
    # Its container's process limit leaves room for two threads per connection.
    assert RELAY_PIDS > 2 * MAX_CONNECTIONS + 1


def test_sigterm_cuts_every_connection_and_ends_the_relay_cleanly(
    tmp_path: Path,
) -> None:
    path = tmp_path / "echo.sock"
    with _echo_server(path), _relay(path) as (process, port), ExitStack() as stack:
        conns = [stack.enter_context(_connect(port)) for _ in range(3)]
        assert all(_echoes(conn, b"hello") for conn in conns)
        process.terminate()
        assert process.wait(TIMEOUT) == 0
        for conn in conns:
            assert conn.recv(16) == b""  # cut: an end of stream, not a hang


def test_a_connection_without_a_server_is_closed_and_the_relay_says_why(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nobody.sock"
    with _relay(path) as (process, port):
        with _connect(port) as conn:
            assert conn.recv(16) == b""
        process.terminate()
        assert process.wait(TIMEOUT) == 0
        assert process.stderr is not None
        assert f"relay: no server at {path}" in process.stderr.read().decode()
