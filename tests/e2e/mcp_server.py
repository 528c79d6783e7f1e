"""``beephost-mcp`` as a process beside a controller, for the e2e tests and the bench:
over streamable HTTP (started here) or over stdio (settings for the SDK's client)."""

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port

TOKEN = "mcp-e2e-Bearer-T0ken-0123456789"


def pooled_env(
    controller_url: str, controller_token: str | None, environment: str
) -> dict[str, str]:
    """The MCP server's settings for sandboxes from ``environment``'s http pool."""
    env = {
        "BEEPHOST_MCP_CONTROLLER_URL": controller_url,
        "BEEPHOST_MCP_ENVIRONMENT": environment,
        "BEEPHOST_MCP_BACKEND_TYPE": "http",
        "BEEPHOST_MCP_MAX_TIMEOUT": "120",
    }
    if controller_token:
        env["BEEPHOST_MCP_CONTROLLER_TOKEN"] = controller_token
    return env


@dataclass
class HttpServer:
    """A running ``beephost-mcp --transport http``."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]


@contextmanager
def http_server(settings: dict[str, str], log: Path) -> Iterator[HttpServer]:
    """``beephost-mcp`` over streamable HTTP on a free loopback port with ``TOKEN``;
    stopped with SIGTERM at the end (its sandboxes released)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEEPHOST_")}
    env |= settings | {
        "BEEPHOST_MCP_TRANSPORT": "http",
        "BEEPHOST_MCP_PORT": str(port),
        "BEEPHOST_MCP_TOKEN": TOKEN,
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "beephost_mcp"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 30
        while not _answers(url):
            assert process.poll() is None, f"beephost-mcp exited: {log.read_text()}"
            assert time.monotonic() < deadline, (
                f"beephost-mcp not up: {log.read_text()}"
            )
            time.sleep(0.1)
        yield HttpServer(url, log, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    """Whether the server answers (401 without a token is an answer)."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, method="POST"), timeout=2
        ):
            return True
    except urllib.error.HTTPError as error:
        with error:  # it holds the connection: closed now, not by the collector
            return True
    except OSError:
        return False
