"""The HTTP server's health, as compose's healthcheck and the chart's probes see it:
``/health`` answers without a token, ``beephost-mcp healthcheck`` exits 0, and a
controller that is not there (the environment cannot be set up) reaches the model as
a typed ``sandbox_unavailable``, while the server stays live."""

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.mcp_server import TOKEN, HttpServer, http_server, pooled_env
from tests.integration.mcp.support import error_code, http_session, read_log
from tests.ports import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """The server, sandboxes from a controller nobody listens for; it is asked to
    create the environment and fill a pool at start."""
    settings = pooled_env(
        f"http://127.0.0.1:{free_port()}", "controller-T0ken-0123456789", "mcp"
    ) | {"BEEPHOST_MCP_CREATE_ENVIRONMENT": "true", "BEEPHOST_MCP_POOL_SIZE": "2"}
    log = tmp_path_factory.mktemp("mcp-health") / "mcp.log"
    with http_server(settings, log) as running:
        yield running


def _port(server: HttpServer) -> str:
    return server.url.rsplit(":", 1)[1].split("/", 1)[0]


def test_health_answers_without_a_token(server: HttpServer) -> None:
    url = server.url.removesuffix("/mcp") + "/health"
    with urllib.request.urlopen(url, timeout=5) as reply:  # loopback only
        assert reply.status == 200
        assert json.loads(reply.read()) == {"status": "ok", "sandboxes": 0}


def test_the_healthcheck_subcommand_probes_it(server: HttpServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEEPHOST_")}
    env |= {
        "BEEPHOST_MCP_TRANSPORT": "http",
        "BEEPHOST_MCP_ENVIRONMENT": "mcp",
        "BEEPHOST_MCP_TOKEN": TOKEN,
    }
    ok = subprocess.run(
        [sys.executable, "-m", "beephost_mcp", "healthcheck"],
        env=env | {"BEEPHOST_MCP_PORT": _port(server)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "/health: HTTP 200" in ok.stdout
    down = subprocess.run(
        [sys.executable, "-m", "beephost_mcp", "healthcheck"],
        env=env | {"BEEPHOST_MCP_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert down.returncode == 1
    assert "unreachable" in down.stdout


async def test_a_missing_controller_is_a_typed_error_and_the_server_stays_live(
    server: HttpServer,
) -> None:
    async with http_session(server.url, TOKEN) as session:
        result = await session.call_tool("run_python", {"code": "1 + 1"})
    assert error_code(result) == "sandbox_unavailable"
    # The set-up at start failed and said so; the claim tried it again.
    log = read_log(server.log)
    assert "preparing the sandboxes failed" in log
    assert TOKEN not in log
    assert "controller-T0ken" not in log
    test_health_answers_without_a_token(server)


def test_the_log_names_no_token(server: HttpServer) -> None:
    assert TOKEN not in Path(server.log).read_text()


async def test_a_wrong_or_missing_token_is_refused(server: HttpServer) -> None:
    import httpx2

    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with httpx2.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer not-the-token-0123456789"}):
            reply = await http.post(server.url, json=body, headers=headers)
            assert reply.status_code == 401
            assert "www-authenticate" in reply.headers
    assert "not-the-token" not in read_log(server.log)
