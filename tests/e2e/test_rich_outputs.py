"""Rich outputs with REAL matplotlib, numpy and pandas, on the real engine (issue 12).

A real controller builds an environment image with the three from PyPI and starts
each backend type from it; the SDK then runs what a code-interpreter app would: a plot
shown with ``plt.show()``, a figure left open, a DataFrame, SVG on request.
"""

import base64
import os
import re
import struct
import sys
from pathlib import Path

import pytest

import beephost_client as bc
from beephost_client.controller import Backend, ControllerClient
from tests.e2e.controller_process import stopped_after
from tests.e2e.plotting import plotting_environment
from tests.e2e.processes import run_captured

pytestmark = pytest.mark.docker

CELL = """
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

plt.plot(np.arange(10) ** 2)
plt.show()
print("shown")
fig = plt.figure(figsize=(6.4, 4.8), dpi=100)
plt.bar(["a", "b"], [3, 5])
df = pd.DataFrame({"city": ["Oslo", "Lima"], "rain": [763, 6]})
df
"""


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR, after checking the signature."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def environment(api: ControllerClient) -> str:
    return plotting_environment(api)


def _start(api: ControllerClient, env: str, kind: str) -> Backend:
    started = api.start_backend(env, kind)  # type: ignore[arg-type]
    return api.wait_backend(started.id, timeout=60)


@pytest.mark.parametrize("kind", ["pipe", "http", "rpc"])
def test_plots_and_tables_come_back(
    api: ControllerClient, environment: str, kind: str
) -> None:
    backend = _start(api, environment, kind)
    with stopped_after(api, backend), api.connect_backend(backend.id) as client:
        # Importing nothing at start: matplotlib is loaded by user code only.
        assert client.evaluate("'matplotlib' in __import__('sys').modules") is False
        result = client.execute(CELL)
        assert result.stdout == "shown\n"
        kinds = [(o.output_type, sorted(o.data)) for o in result.outputs]
        assert kinds == [
            ("display_data", ["image/png", "text/plain"]),  # plt.show()
            ("execute_result", ["text/html", "text/plain"]),  # the DataFrame
            ("display_data", ["image/png", "text/plain"]),  # the open figure
        ]
        shown, table, left_open = result.outputs
        assert shown.png is not None
        assert left_open.png is not None
        assert png_size(shown.png) == (640, 480)
        assert png_size(left_open.png) == (640, 480)
        assert left_open.metadata["image/png"] == {"width": 640, "height": 480}
        assert result.images == [shown, left_open]
        assert table.html is not None
        assert "<table" in table.html
        assert "Oslo" in table.html
        assert table.text is not None
        assert "Oslo" in table.text
        assert result.html == table.html
        assert result.text == table.text
        # Figures were closed after the cell: the next one shows nothing.
        assert client.execute("len(plt.get_fignums())").value == 0
        assert client.execute("x = 1").outputs == []

        # Streamed: the plot comes as an event, before the text printed after it.
        items: list[bc.OutputChunk | bc.Output] = []
        with client.stream("plt.plot([1, 2]); plt.show(); print('after')") as events:
            items.extend(events)
        assert isinstance(items[0], bc.Output)
        assert items[0].png is not None
        assert png_size(items[0].png) == (640, 480)
        assert [i.data for i in items[1:] if isinstance(i, bc.OutputChunk)] == [
            "after\n"
        ]

        # SVG on request, per session, through the documented variable.
        svg = client.execute(
            "import os\nos.environ['BEEPHOST_FIGURE_FORMAT'] = 'svg'\n"
            "plt.plot([1, 2])\nNone"
        )
        (figure,) = svg.outputs
        assert figure.svg is not None
        assert figure.svg.lstrip().startswith("<?xml")
        assert figure.png is None
        client.execute("del os.environ['BEEPHOST_FIGURE_FORMAT']")

        # display() of a figure object, as in Jupyter.
        shown_fig = client.execute(
            "f, ax = plt.subplots(figsize=(3, 2), dpi=100)\ndisplay(f)\nplt.close(f)"
        )
        (one,) = shown_fig.outputs
        assert one.png is not None
        assert png_size(one.png) == (300, 200)
        assert base64.b64decode(one.data["image/png"]) == one.png


DOC = Path(__file__).resolve().parents[2] / "docs" / "users" / "code-interpreter.md"
_PRINT_COMMENT = re.compile(r"^\s*print\(.*\)\s+#\s(.+)$")


def doc_python_blocks() -> list[str]:
    """The ```python blocks of docs/users/code-interpreter.md."""
    return re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), re.M | re.S)


def test_code_interpreter_page_runs(
    api: ControllerClient, environment: str, tmp_path: Path
) -> None:
    """The app-builder page's examples (one chat turn; files in and out), each run as
    written against one real backend; each ``print(...)  # value`` must print that
    value."""
    blocks = doc_python_blocks()
    assert len(blocks) == 2
    backend = _start(api, environment, "http")
    with stopped_after(api, backend):
        connection = api.backend_connection(backend.id)
        env = {
            **os.environ,
            "BEEPHOST_URL": connection.url,
            "BEEPHOST_TOKEN": connection.token or "",
        }
        for block in blocks:
            expected = [
                m[1] for ln in block.splitlines() if (m := _PRINT_COMMENT.match(ln))
            ]
            assert expected, "each example shows what it prints"
            run = run_captured(
                [sys.executable, "-c", block], timeout=120, env=env, cwd=tmp_path
            )
            assert run.returncode == 0, run.stderr
            assert run.stdout.splitlines() == expected
