"""Helpers to run a real pipe backend process and talk to it with a minimal blocking client."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.ports import free_port

START_TIMEOUT = 20.0


def connect_unix(path: Path, timeout: float) -> socket.socket:
    """A blocking stream socket connected to ``path``, each operation under ``timeout``
    seconds; nothing left open when the connect fails."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    return sock


class PipeClient:
    """A bare NDJSON client: enough to drive the protocol from tests."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.sock = connect_unix(path, timeout)
        self.reader = self.sock.makefile("rb")
        self.next_id = 0

    @classmethod
    def adopt(cls, sock: socket.socket, timeout: float = 30.0) -> "PipeClient":
        """Wrap a socket that is already connected."""
        client = cls.__new__(cls)
        sock.setblocking(True)
        sock.settimeout(timeout)
        client.sock, client.reader, client.next_id = sock, sock.makefile("rb"), 0
        return client

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> dict[str, Any]:
        line = self.reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def call(self, kind: str, **params: Any) -> dict[str, Any]:
        """Send one request and return the whole reply envelope (skipping events)."""
        self.next_id += 1
        self.send({"id": self.next_id, "type": kind, "params": params})
        while True:
            reply = self.read()
            if "event" not in reply:
                assert reply["id"] == self.next_id
                return reply

    def result(self, kind: str, **params: Any) -> Any:
        reply = self.call(kind, **params)
        assert "result" in reply, reply
        return reply["result"]

    def error(self, kind: str, **params: Any) -> dict[str, Any]:
        reply = self.call(kind, **params)
        assert "error" in reply, reply
        error: dict[str, Any] = reply["error"]
        return error

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class PipeServerProcess:
    def __init__(
        self, socket_path: Path, process: subprocess.Popen[bytes], metrics_port: int
    ) -> None:
        self.socket_path = socket_path
        self.process = process
        self.metrics_port = metrics_port
        self.clients: list[PipeClient] = []

    def connect(self, timeout: float = 30.0) -> PipeClient:
        client = PipeClient(self.socket_path, timeout)
        self.clients.append(client)
        return client

    def rss_high_water_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM")


def spawn_pipe_server(
    directory: Path, python: str, **settings: Any
) -> PipeServerProcess:
    """A pipe backend process started, not waited for (its log: server.log)."""
    socket_path = directory / "pipe.sock"
    metrics_port = free_port()
    env = {
        **os.environ,
        "BEEPHOST_PIPE_BACKEND_SOCKET_PATH": str(socket_path),
        "BEEPHOST_PIPE_BACKEND_METRICS_PORT": str(metrics_port),
        "BEEPHOST_PIPE_BACKEND_PYTHON": python,
        "BEEPHOST_PIPE_BACKEND_KILL_GRACE": "0.5",
        "BEEPHOST_PIPE_BACKEND_ENVIRONMENT": "test-env",
    }
    env.update(
        {f"BEEPHOST_PIPE_BACKEND_{k.upper()}": str(v) for k, v in settings.items()}
    )
    with (directory / "server.log").open("wb") as log:  # the child keeps its own copy
        process = subprocess.Popen(
            [sys.executable, "-m", "beephost_pipe_backend"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return PipeServerProcess(socket_path, process, metrics_port)


def connect_when_listening(
    server: PipeServerProcess, directory: Path, timeout: float = START_TIMEOUT
) -> PipeClient:
    """A client of ``server`` as soon as it accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(
                f"server exited: {(directory / 'server.log').read_text()}"
            )
        try:
            return server.connect(timeout=timeout)
        except OSError:
            time.sleep(0.02)
    raise AssertionError("pipe backend did not listen")


def start_pipe_server(
    directory: Path, python: str, **settings: Any
) -> PipeServerProcess:
    server = spawn_pipe_server(directory, python, **settings)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        probe = connect_when_listening(server, directory, deadline - time.monotonic())
        try:
            if probe.result("ping").get("ready"):
                return server
        finally:
            server.clients.remove(probe)
            probe.close()
        time.sleep(0.05)
    server.process.kill()
    raise AssertionError("pipe backend did not become ready")


def stop_pipe_server(server: PipeServerProcess) -> None:
    for client in server.clients:
        client.close()
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


StartServer = Callable[..., PipeServerProcess]
