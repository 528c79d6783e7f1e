"""``beep-host mcp``: the block ``--client-config`` prints starts, as a desktop client
would start it, an MCP server over stdio whose sandboxes come from the CLI's controller
(a live controller here), with the CLI's token; driven by the MCP SDK's own client."""

import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from typer.testing import CliRunner

from beephost_cli.main import app
from tests.integration.cli.support import TOKEN, LiveController, subprocess_env
from tests.integration.mcp.support import error_code, structured, text_of


def _config(controller: LiveController, *args: str) -> tuple[dict[str, Any], str]:
    result = CliRunner().invoke(
        app, ["mcp", "--venv", "charts", *args, "--client-config"], env=controller.env()
    )
    assert result.exit_code == 0, result.output
    server: dict[str, Any] = json.loads(result.stdout)["mcpServers"]["beephost"]
    return server, result.stderr


@contextlib.asynccontextmanager
async def _session(
    server: dict[str, Any], log: Path, **env: str
) -> AsyncIterator[ClientSession]:
    """The client's side: it starts the configured command with the configured
    variables (and nothing of the CLI's from the test's environment)."""
    params = StdioServerParameters(
        command=server["command"],
        args=server["args"],
        env=subprocess_env(None) | server.get("env", {}) | env,
    )
    with log.open("a") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


def test_the_client_config_block_starts_beep_host_mcp(
    controller: LiveController,
) -> None:
    server, stderr = _config(controller, "--type", "pipe")
    assert Path(server["command"]).name == "beep-host"
    assert server["args"] == [
        "--controller",
        controller.url,
        "mcp",
        "--venv",
        "charts",
        "--type",
        "pipe",
    ]
    # The controller's token goes in the environment, never on the command line.
    assert server["env"] == {"BEEPHOST_TOKEN": TOKEN}
    assert "keep it private" in stderr


@pytest.mark.anyio
async def test_the_server_claims_from_the_clis_controller_with_its_token(
    controller: LiveController, tmp_path: Path
) -> None:
    server, _ = _config(controller)
    log = tmp_path / "mcp.log"
    async with _session(server, log) as session:
        tools = (await session.list_tools()).tools
        result = await session.call_tool("run_python", {"code": "1 + 1"})
    assert len(tools) == 8
    # The controller answered (URL and token right) that it has no such environment.
    assert error_code(result) == "sandbox_unavailable", text_of(result)
    assert "charts" in structured(result)["error"]["message"]
    text = log.read_text()
    assert f"pools of charts (http) at {controller.url}" in text
    assert TOKEN not in text


@pytest.mark.anyio
async def test_a_wrong_token_is_the_controllers_refusal(
    controller: LiveController, tmp_path: Path
) -> None:
    server, _ = _config(controller)
    async with _session(
        server, tmp_path / "mcp.log", BEEPHOST_TOKEN="not-the-token"
    ) as session:
        result = await session.call_tool("run_python", {"code": "1 + 1"})
    assert error_code(result) == "sandbox_unavailable"
    assert "credentials" in structured(result)["error"]["hint"]


def test_without_venv_it_is_a_usage_error(controller: LiveController) -> None:
    result = CliRunner().invoke(app, ["mcp"], env=controller.env())
    assert result.exit_code == 2
    assert "--venv" in result.stderr


def test_without_the_server_installed_it_says_how(
    controller: LiveController, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    result = CliRunner().invoke(
        app, ["mcp", "--venv", "charts"], env=controller.env(PATH=str(tmp_path))
    )
    assert result.exit_code == 1
    assert "beephost-mcp is not installed" in result.stderr
    assert "beephost-cli[mcp]" in result.stderr
