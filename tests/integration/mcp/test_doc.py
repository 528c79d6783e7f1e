"""docs/users/mcp.md's examples, run: the desktop client's JSON block starts the server
as written (its command replaced by this checkout's), and each stdio python block (the
MCP SDK's client, the OpenAI Agents SDK, pydantic-ai) prints what its comments say
against a backend process. Its HTTP blocks run in tests/e2e/test_mcp.py, against the
server and a controller's pool. tests/e2e/test_doc_examples.py lists them as run here."""

import json
from pathlib import Path

import pytest

from tests.integration.contract.servers import ServerProcess
from tests.integration.mcp.conftest import BACKEND_TOKEN
from tests.integration.mcp.doc import blocks, python_blocks, run_block
from tests.integration.mcp.support import stdio_session, structured

STDIO_BLOCKS = python_blocks("BEEPHOST_URL")
HTTP_BLOCKS = python_blocks("MCP_URL")


@pytest.mark.anyio
async def test_the_desktop_config_block_starts_a_working_server(
    backend: ServerProcess, tmp_path: Path
) -> None:
    (block,) = blocks("json")
    config = json.loads(block)["mcpServers"]["beephost"]
    assert config["args"][-1] == "beephost-mcp"
    env = dict(config["env"])
    assert set(env) == {"BEEPHOST_MCP_BACKEND_URL", "BEEPHOST_MCP_BACKEND_TOKEN"}
    env["BEEPHOST_MCP_BACKEND_URL"] = backend.url
    env["BEEPHOST_MCP_BACKEND_TOKEN"] = BACKEND_TOKEN
    async with stdio_session(env, tmp_path / "log") as session:
        result = await session.call_tool("run_python", {"code": "2 ** 10"})
    assert structured(result)["result"] == "1024"


def test_every_python_block_is_run_by_a_tier() -> None:
    # Each reads a backend (stdio, run here) or the HTTP server (run in tests/e2e).
    assert len(STDIO_BLOCKS) + len(HTTP_BLOCKS) == len(blocks("python"))
    assert [p.id for p in STDIO_BLOCKS] == ["mcp", "agents.mcp", "pydantic_ai.mcp"]  # type: ignore[attr-defined]
    assert [p.id for p in HTTP_BLOCKS] == ["agents.mcp", "pydantic_ai.mcp"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("code", STDIO_BLOCKS)
def test_a_stdio_block_prints_what_it_says(code: str, backend: ServerProcess) -> None:
    run_block(code, {"BEEPHOST_URL": backend.url, "BEEPHOST_TOKEN": BACKEND_TOKEN})
