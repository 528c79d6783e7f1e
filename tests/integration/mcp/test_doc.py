"""docs/users/mcp.md's examples, run: the desktop client's JSON block starts the server
as written (its command replaced by this checkout's), and the Python example prints
what its comments say. tests/e2e/test_doc_examples.py lists them as run here."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.contract.servers import ServerProcess
from tests.integration.mcp.conftest import BACKEND_TOKEN
from tests.integration.mcp.support import stdio_session, structured

pytestmark = pytest.mark.anyio

PAGE = Path(__file__).resolve().parents[3] / "docs" / "users" / "mcp.md"
_PRINT_COMMENT = re.compile(r"^\s*print\(.*\)\s+#\s(.+)$")


def _block(language: str) -> str:
    (found,) = re.findall(rf"```{language}\n(.*?)\n```", PAGE.read_text(), re.DOTALL)
    return str(found)


async def test_the_desktop_config_block_starts_a_working_server(
    backend: ServerProcess, tmp_path: Path
) -> None:
    config = json.loads(_block("json"))["mcpServers"]["beephost"]
    assert config["args"][-1] == "beephost-mcp"
    env = dict(config["env"])
    assert set(env) == {"BEEPHOST_MCP_BACKEND_URL", "BEEPHOST_MCP_BACKEND_TOKEN"}
    env["BEEPHOST_MCP_BACKEND_URL"] = backend.url
    env["BEEPHOST_MCP_BACKEND_TOKEN"] = BACKEND_TOKEN
    async with stdio_session(env, tmp_path / "log") as session:
        result = await session.call_tool("run_python", {"code": "2 ** 10"})
    assert structured(result)["result"] == "1024"


def test_the_python_example_prints_what_it_says(backend: ServerProcess) -> None:
    code = _block("python")
    expected = [m[1] for line in code.splitlines() if (m := _PRINT_COMMENT.match(line))]
    env = os.environ | {"BEEPHOST_URL": backend.url, "BEEPHOST_TOKEN": BACKEND_TOKEN}
    ran = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == expected
