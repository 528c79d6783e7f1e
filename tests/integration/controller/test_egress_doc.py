"""docs/operators/egress.md runs: every example block in order against one in-process
controller (uvicorn, SQLite, the SDK and the CLI), started with the internal ranges
its settings block exports. tests/e2e/test_doc_examples.py lists the page's blocks
as run here.

- a ``json`` policy is created as an environment's egress; when the block after it is
  an ``error`` reply, the controller's reply must be exactly that;
- each ``bash`` line runs: ``export`` sets the controller's setting, ``beep-host ...``
  goes through the real CLI (a ``printf ... |`` feeds its stdin) and must exit 0;
- each ``http`` request is sent as written (with the controller's token) and must
  succeed;
- the ``python`` block runs with the controller's URL, and prints what its comments
  say.
"""

import contextlib
import http.client
import io
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from beephost_cli.main import app
from tests.integration.cli.support import TOKEN, LiveController, live_controller

DOC = Path(__file__).resolve().parents[3] / "docs" / "operators" / "egress.md"
_FENCE = re.compile(r"^```(\w*)\s*$")
_PRINTED = re.compile(r"^\s*print\(.*\)\s+#\s(.+)$")
WEATHER_KEY = "wk-doc-0123456789abcdef"


@dataclass(frozen=True)
class Block:
    line: int
    language: str
    text: str


def blocks() -> list[Block]:
    found, opened, body = [], None, list[str]()
    for number, line in enumerate(DOC.read_text().splitlines(), 1):
        fence = _FENCE.match(line)
        if opened is None and fence:
            opened, body = (number, fence[1]), []
        elif opened is not None and line.strip() == "```":
            found.append(Block(opened[0], opened[1], "\n".join(body)))
            opened = None
        elif opened is not None:
            body.append(line)
    return found


def _internal_ranges() -> dict[str, str]:
    for block in blocks():
        for line in block.text.splitlines():
            if line.startswith("export BEEPHOST_CONTROLLER_EGRESS_INTERNAL_RANGES="):
                _, _, value = line.partition("=")
                ranges: dict[str, str] = json.loads(shlex.split(value)[0])
                return ranges
    raise AssertionError("the page exports no internal ranges")


def _call(live: LiveController, method: str, path: str, body: Any) -> tuple[int, Any]:
    host, port = live.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(
            method,
            path,
            body if isinstance(body, bytes | None) else json.dumps(body),
            {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        reply = connection.getresponse()
        raw = reply.read()
    finally:
        connection.close()
    return reply.status, json.loads(raw) if raw else None


def _run_bash(live: LiveController, block: Block) -> None:
    for line in block.text.splitlines():
        if not line.strip() or line.startswith("export "):
            continue  # the export is the controller's setting, applied at its start
        stdin = None
        if line.startswith('printf %s "$WEATHER_KEY" | '):
            stdin, line = WEATHER_KEY, line.split(" | ", 1)[1]
        words = shlex.split(line)
        assert words[0] == "beep-host", f"{DOC.name}:{block.line}: {line}"
        result = CliRunner().invoke(app, words[1:], input=stdin, env=live.env())
        assert result.exit_code == 0, f"{line}\n{result.output}"
        assert WEATHER_KEY not in result.output


def _run_http(live: LiveController, block: Block) -> None:
    head, _, body = block.text.partition("\n\n")
    method, path = head.splitlines()[0].split()
    status, reply = _call(live, method, path, body.encode() if body else None)
    assert 200 <= status < 300, (block.line, status, reply)
    assert "sk-live" not in json.dumps(reply), "a value came back"


def _run_python(live: LiveController, block: Block, monkeypatch: Any) -> None:
    monkeypatch.setenv("BEEPHOST_CONTROLLER_TOKEN", TOKEN)
    monkeypatch.setenv("WEATHER_KEY", WEATHER_KEY)
    code = block.text.replace("http://127.0.0.1:8600", live.url)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # the doc's own example
        exec(compile(code, f"{DOC.name}:{block.line}", "exec"), {})
    expected = [m[1] for line in code.splitlines() if (m := _PRINTED.match(line))]
    assert out.getvalue().splitlines() == expected


def test_every_block_of_the_page_runs_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = blocks()
    assert {b.language for b in page} == {"json", "bash", "http", "python", "text"}
    with live_controller(tmp_path, egress_internal_ranges=_internal_ranges()) as live:
        policies = 0
        for index, block in enumerate(page):
            if block.language == "json":
                document = json.loads(block.text)
                if "error" in document:
                    continue  # the previous policy's reply, checked with it
                policies += 1
                status, reply = _call(
                    live,
                    "POST",
                    "/api/v1/environments",
                    {"name": f"doc-{policies}", "egress": document},
                )
                following = page[index + 1] if index + 1 < len(page) else None
                if following is not None and '"error"' in following.text:
                    assert (status, reply) == (400, json.loads(following.text))
                else:
                    assert status == 201, (block.line, reply)
                    assert reply["egress"]["mode"] == "allow_list"
                    assert len(reply["egress"]["allow"]) == len(document["allow"])
            elif block.language == "bash":
                _run_bash(live, block)
            elif block.language == "http":
                _run_http(live, block)
            elif block.language == "python":
                _run_python(live, block, monkeypatch)
        assert policies >= 3
