"""``beep-host exec`` with rich outputs: text printed, images to files, bundles in JSON."""

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from beephost_cli.main import app
from tests.integration.contract.servers import TOKEN, ServerProcess
from tests.integration.test_rich_outputs_contract import PNG

KINDS = ("pipe", "http")

PLOT = f"""
import base64
class Plot:
    def _repr_png_(self):
        return base64.b64decode({base64.b64encode(PNG).decode()!r})
    def __repr__(self):
        return "<Plot>"
class Table:
    def _repr_html_(self):
        return "<table></table>"
    def __repr__(self):
        return "Table()"
print("before")
display(Plot())
print("after")
Table()
"""


def cli(backend: ServerProcess, *args: str) -> Result:
    command, *rest = args
    target = ["--url", backend.url, "--token", TOKEN]
    return CliRunner().invoke(app, [command, *target, *rest])


@pytest.mark.parametrize("kind", KINDS)
def test_exec_prints_outputs_and_writes_images(
    backends: dict[str, ServerProcess], kind: str, tmp_path: Path
) -> None:
    target = tmp_path / "plots"
    result = cli(backends[kind], "exec", PLOT, "--outputs", str(target))
    assert result.exit_code == 0, result.output
    # In order; the rich value's text once (not its repr again after it).
    assert result.stdout == "before\n<Plot>\nafter\nTable()\n"
    written = target / "output-1.png"
    assert written.read_bytes() == PNG
    assert f"image written to {written}" in result.stderr
    assert sorted(p.name for p in target.iterdir()) == ["output-1.png"]


@pytest.mark.parametrize("kind", KINDS)
def test_exec_without_outputs_dir_says_an_image_was_not_saved(
    backends: dict[str, ServerProcess], kind: str
) -> None:
    result = cli(backends[kind], "exec", PLOT)
    assert result.exit_code == 0, result.output
    assert result.stdout == "before\n<Plot>\nafter\nTable()\n"
    assert "pass --outputs DIR to save it" in result.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_exec_json_includes_the_bundles(
    backends: dict[str, ServerProcess], kind: str, tmp_path: Path
) -> None:
    result = cli(backends[kind], "exec", PLOT, "--json", "--outputs", str(tmp_path))
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["outputs"] == [
        {
            "output_type": "display_data",
            "data": {
                "image/png": base64.b64encode(PNG).decode(),
                "text/plain": "<Plot>",
            },
            "metadata": {"image/png": {"width": 3, "height": 2}},
        },
        {
            "output_type": "execute_result",
            "data": {"text/html": "<table></table>", "text/plain": "Table()"},
            "metadata": {},
        },
    ]
    assert body["outputs_dropped"] == 0
    assert (tmp_path / "output-1.png").read_bytes() == PNG
