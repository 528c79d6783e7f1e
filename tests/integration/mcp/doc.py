"""docs/users/mcp.md's python blocks, and how a test runs one: each reads where its
server is from the environment, either a backend (``BEEPHOST_URL``, a stdio block:
tests/integration/mcp/test_doc.py) or the MCP server over HTTP (``MCP_URL``, an HTTP
block: tests/e2e/test_mcp.py), and prints what its ``# comments`` say."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[3] / "docs" / "users" / "mcp.md"
_PRINT_COMMENT = re.compile(r"^\s*print\(.*\)\s+#\s(.+)$")
_FIRST_FROM = re.compile(r"^from (\S+) import", re.MULTILINE)


def blocks(language: str) -> list[str]:
    """The page's fenced blocks of ``language``, in order."""
    return [
        str(found)
        for found in re.findall(
            rf"```{language}\n(.*?)\n```", PAGE.read_text(), re.DOTALL
        )
    ]


def python_blocks(reads: str) -> list[object]:
    """The python blocks that read ``reads`` from the environment, as pytest params
    named by the library each imports first."""
    return [
        pytest.param(code, id=_FIRST_FROM.findall(code)[-1])
        for code in blocks("python")
        if f'os.environ["{reads}"]' in code
    ]


def run_block(code: str, env: dict[str, str]) -> None:
    """Run ``code`` as a script with ``env`` added (console scripts of this checkout
    on PATH) and check it printed what its comments say."""
    expected = [m[1] for line in code.splitlines() if (m := _PRINT_COMMENT.match(line))]
    assert expected, "a block that prints nothing checks nothing"
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    ran = subprocess.run(
        [sys.executable, "-c", code],
        env=os.environ | env | {"PATH": path},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == expected, ran.stderr
