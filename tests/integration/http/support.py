"""A real HTTP backend in a thread or a process, and a minimal blocking HTTP client."""

import asyncio
import gc
import http.client
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from beephost_http_backend.server import DrainingServer, create_server
from beephost_http_backend.settings import Settings
from beephost_http_backend.state import BackendState
from tests.integration.processes import service_env
from tests.ports import free_port

START_TIMEOUT = 30.0
#: A stop's worst case by design: the drain (drain_timeout, 10 s), then the executor's
#: wait for its background spawns (spawn_timeout, 20 s), then the app's own background
#: tasks (5 s); plus a margin for a loaded machine.
STOP_TIMEOUT = 10.0 + 20.0 + 5.0 + 10.0
JSON = {"Content-Type": "application/json"}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = self.json["error"]
        assert set(error) == {"code", "message", "data"}, error
        return error


@dataclass
class StreamReply:
    status: int
    headers: dict[str, str]
    lines: list[tuple[float, Any]] = field(default_factory=list)  # (arrival, object)


class Client:
    """One keep-alive connection; every method sends one request and reads the reply."""

    def __init__(
        self, port: int, token: str | None = None, timeout: float = 60.0
    ) -> None:
        self.port = port
        self.token = token
        self.timeout = timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(JSON)
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        data = (
            raw
            if raw is not None
            else None
            if body is None
            else json.dumps(body).encode()
        )
        self.conn.request(method, path, data, self.headers(headers))
        response = self.conn.getresponse()
        return Reply(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read(),
        )

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, body, **kwargs)

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        reply = self.request(method, path, body)
        assert reply.status == status, (reply.status, reply.body[:2000])
        return reply.json

    def eval(self, expression: str, **params: Any) -> Any:
        return self.ok("POST", "/api/eval", {"expression": expression, **params})[
            "value"
        ]

    def stream(self, body: Any, headers: dict[str, str] | None = None) -> StreamReply:
        self.conn.request(
            "POST", "/api/exec/stream", json.dumps(body).encode(), self.headers(headers)
        )
        response = self.conn.getresponse()
        reply = StreamReply(
            response.status, {k.lower(): v for k, v in response.getheaders()}
        )
        while line := response.readline():
            reply.lines.append((time.monotonic(), json.loads(line)))
        response.read()  # marks the response complete, so the connection is reused
        return reply

    def close(self) -> None:
        self.conn.close()


class ThreadServer:
    """The app under uvicorn, in a thread with its own event loop, on 127.0.0.1:0."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server: DrainingServer
        self.server, self.port = create_server(settings)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.clients: list[Client] = []

    @property
    def app(self) -> FastAPI:
        return self.server.front.fastapi(START_TIMEOUT)

    @property
    def state(self) -> BackendState:
        return self.server.backend

    def start(self) -> "ThreadServer":
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("the HTTP backend did not start")
            time.sleep(0.02)
        return self

    def client(self, token: str | None = None, timeout: float = 60.0) -> Client:
        own = self.settings.token.get_secret_value() if self.settings.token else None
        client = Client(self.port, token or own, timeout)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.should_exit = True
        self.thread.join(timeout=STOP_TIMEOUT)
        if self.thread.is_alive():
            raise AssertionError(
                f"the server did not stop within {STOP_TIMEOUT}s; its tasks:\n"
                + _pending_tasks()
            )


def _pending_tasks() -> str:
    """Every unfinished asyncio task and where it waits: what a hung stop leaves as
    its one clue (read from another thread, so a best effort)."""
    tasks = [o for o in gc.get_objects() if isinstance(o, asyncio.Task)]
    lines = []
    for task in tasks:
        if task.done():
            continue
        lines.append(repr(task))
        lines.extend(
            f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}"
            for frame in task.get_stack(limit=8)
        )
    return "\n".join(lines) or "(none)"


def settings_for(python: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "python": python,
        "environment": "test-env",
        "kill_grace": 0.5,
        "prewarm": 1,
        **overrides,
    }
    return Settings(**values)


class ProcessServer:
    """``python -m beephost_http_backend`` with settings in its environment."""

    def __init__(self, directory: Path, python: str, **settings: Any) -> None:
        self.port = free_port()
        self.log = directory / "server.log"
        env = service_env(
            BEEPHOST_HTTP_BACKEND_PORT=str(self.port),
            BEEPHOST_HTTP_BACKEND_PYTHON=python,
            BEEPHOST_HTTP_BACKEND_KILL_GRACE="0.5",
        )
        env.update(
            {f"BEEPHOST_HTTP_BACKEND_{k.upper()}": str(v) for k, v in settings.items()}
        )
        self.env = env
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "beephost_http_backend"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"server did not start: {self.log.read_text()}")
            time.sleep(0.05)

    def ready(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/ready")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:  # also when the server resets the connection while it starts
            conn.close()

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout=timeout)

    def log_lines(self) -> Iterator[dict[str, Any]]:
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                yield json.loads(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
