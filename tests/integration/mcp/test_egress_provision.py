"""The MCP server's setup on the controller carries an egress policy: the environment
it creates has its allow-list (ENVIRONMENT_EGRESS), and a claim is refused as every
allow-list start is until the egress proxy exists. A real controller in-process
(uvicorn, SQLite, the real SDK), containers from its in-memory engine."""

from pathlib import Path

import pytest

from beephost_client import Timeout
from beephost_client.controller import AsyncControllerClient
from beephost_mcp.sandbox import PooledBackends, Provision
from beephost_mcp.settings import Settings
from tests.integration.cli.support import TOKEN, live_controller

pytestmark = pytest.mark.anyio

POLICY = {"allow": [{"host": "api.weather.example", "ports": [443]}]}


def test_the_setting_is_a_json_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "BEEPHOST_MCP_ENVIRONMENT_EGRESS",
        '{"allow": [{"host": "api.weather.example", "ports": [443]}]}',
    )
    settings = Settings(environment="mcp", controller_url="http://127.0.0.1:1")
    assert settings.environment_egress == POLICY


async def test_the_environment_it_creates_has_the_allow_list(tmp_path: Path) -> None:
    with live_controller(tmp_path) as live:
        async with AsyncControllerClient(live.url, token=TOKEN) as controller:
            backends = PooledBackends(
                controller,
                "mcp",
                "http",
                idle_timeout=60,
                install_timeout=60,
                timeout=Timeout(10.0),
                provision=Provision(create=True, requirements=("six",), egress=POLICY),
            )
            await backends.prepare()
            env = await controller.environment("mcp")
            assert (env.status, env.egress.mode) == ("ready", "allow_list")
            assert env.egress.allow[0]["host"] == "api.weather.example"
            # Docker enforces it: the backend runs behind the egress proxy.
            backend = await controller.start_backend("mcp", "http")
            assert backend.egress.mode == "allow_list"
            assert await controller.egress_refusals(backend.id) == []
