"""Real backend processes (pipe, HTTP, gRPC) on loopback ports and Unix sockets.

Every backend runs as ``python -m beephost_<kind>_backend`` with the same limits, so the
contract suite sees the same behaviour through every transport. A server can be stopped
and started again on the same address, to test reconnection.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.ports import free_port

TRANSPORTS = ("pipe", "http", "grpc")
START_TIMEOUT = 30.0
TOKEN = "s3cret-Contract-T0ken"

# The limits every contract server runs with; tests rely on them (see LIMITS users).
KILL_GRACE = 0.5
MAX_HANDLES = 64
MAX_RESULT_BYTES = 8 << 20
MAX_REQUEST_BYTES = 12 << 20
WORKSPACE_QUOTA_BYTES = 64 << 20

_MODULE = {
    "pipe": "beephost_pipe_backend",
    "http": "beephost_http_backend",
    "grpc": "beephost_rpc_backend",
}


def contract_settings(kind: str) -> dict[str, object]:
    """The limits every contract server runs with (``kind``: pipe or a TCP one), by
    setting name without its prefix; processes here and containers in tests/e2e."""
    settings: dict[str, object] = {
        "METRICS_PORT": 0,
        "KILL_GRACE": KILL_GRACE,
        "ENVIRONMENT": "contract",
        "MAX_HANDLES": MAX_HANDLES,
        "MAX_RESULT_BYTES": MAX_RESULT_BYTES,
        "DRAIN_TIMEOUT": 1,
        "WORKSPACE_QUOTA_BYTES": WORKSPACE_QUOTA_BYTES,
    }
    if kind == "pipe":
        settings["MAX_FRAME_BYTES"] = MAX_REQUEST_BYTES
    else:
        settings["MAX_REQUEST_BYTES"] = MAX_REQUEST_BYTES
    return settings


_PREFIX = {
    "pipe": "BEEPHOST_PIPE_BACKEND_",
    "http": "BEEPHOST_HTTP_BACKEND_",
    "grpc": "BEEPHOST_RPC_BACKEND_",
}


@dataclass(frozen=True)
class Backend:
    """Where a backend listens, and its token (None: no auth)."""

    url: str
    token: str | None = None


def down_url(transport: str, directory: Path) -> str:
    """A URL of the transport where nothing listens."""
    if transport == "pipe":
        return f"unix://{directory / 'nobody.sock'}"
    return f"{transport}://127.0.0.1:{free_port()}"


@dataclass
class ServerProcess:
    kind: str
    directory: Path
    python: str
    token: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def socket_path(self) -> Path:
        return self.directory / "pipe.sock"

    @property
    def url(self) -> str:
        if self.kind == "pipe":
            return f"unix://{self.socket_path}"
        return f"{self.kind}://127.0.0.1:{self.port}"

    @property
    def backend(self) -> Backend:
        return Backend(self.url, self.token)

    @property
    def log(self) -> Path:
        return self.directory / f"server-{self.starts}.log"

    def environment(self) -> dict[str, str]:
        prefix = _PREFIX[self.kind]
        values: dict[str, Any] = {
            "PYTHON": self.python,
            **contract_settings(self.kind),
            **self.settings,
        }
        if self.kind == "pipe":
            values["SOCKET_PATH"] = self.socket_path
        else:
            values["HOST"] = "127.0.0.1"
            values["PORT"] = self.port
        if self.token is not None:
            values["TOKEN"] = self.token
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
        env.update({prefix + name: str(value) for name, value in values.items()})
        return env

    def start(self) -> None:
        """Start (again, on the same address) and wait until it serves."""
        assert self.process is None or self.process.poll() is not None
        if self.kind != "pipe" and not self.port:
            self.port = free_port()
        self.starts += 1
        with self.log.open("wb") as out:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [sys.executable, "-m", _MODULE[self.kind]],
                env=self.environment(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.kind} backend exited: {self.log.read_text()}"
                )
            if self._ready():
                return
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"{self.kind} backend not ready: {self.log.read_text()}")

    def restart(self) -> None:
        """Stop, then start again on the same address (a backend restart)."""
        self.stop()
        self.start()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _ready(self) -> bool:
        try:
            if self.kind == "pipe":
                return _pipe_ready(self.socket_path)
            if self.kind == "http":
                url = f"http://127.0.0.1:{self.port}/ready"
                with urllib.request.urlopen(url, timeout=2) as response:
                    return bool(response.status == 200)
            return _grpc_ready(f"127.0.0.1:{self.port}")
        except urllib.error.HTTPError as error:
            with error:  # it holds the connection: closed now, not by the collector
                return False
        except OSError:
            return False


def _pipe_ready(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(str(path))
        sock.sendall(b'{"id": 1, "type": "ping"}\n')
        reply = json.loads(sock.makefile("rb").readline())
        return bool(reply.get("result", {}).get("ready"))


def _grpc_ready(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


class ServerSet:
    """Servers started on demand, all stopped (and their directories removed) at close."""

    def __init__(self, python: str) -> None:
        self.python = python
        self.root = Path(tempfile.mkdtemp(prefix="bhc", dir="/tmp"))  # short: sun_path
        self.servers: list[ServerProcess] = []

    def start(
        self, kind: str, token: str | None = None, **settings: Any
    ) -> ServerProcess:
        directory = self.root / str(len(self.servers))
        directory.mkdir()
        server = ServerProcess(kind, directory, self.python, token, settings)
        self.servers.append(server)
        server.start()
        return server

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.root, ignore_errors=True)
