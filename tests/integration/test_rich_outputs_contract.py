"""Rich outputs through the SDK on every transport, sync and async (issue 12).

``display()``, the IPython representation protocol and the ``outputs`` of an exec
result, with fake objects implementing ``_repr_png_`` and the like (real matplotlib
and pandas are in tests/e2e/test_rich_outputs.py). Same parametrisation as
test_transport_contract.py: ``{pipe, http, grpc} x {sync, async}``.
"""

import base64
import struct
import zlib
from typing import Any

import pytest

import beephost_client as bc

pytestmark = pytest.mark.anyio


def tiny_png(width: int, height: int) -> bytes:
    """A valid grey PNG of ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = tiny_png(3, 2)
TABLE_HTML = "<table><tr><td>1</td></tr></table>"
#: A fake table, as a pandas DataFrame is: an HTML and a Markdown form.
TABLE = f"""
class Table:
    def _repr_html_(self):
        return {TABLE_HTML!r}
    def _repr_markdown_(self):
        return "| 1 |"
    def __repr__(self):
        return "Table(1)"
"""

# Fake rich objects, defined in the session: each implements part of the protocol.
FAKES = f"""
import base64
{TABLE}

class Chart:
    def _repr_png_(self):
        return base64.b64decode({base64.b64encode(PNG).decode()!r})
    def _repr_html_(self):
        raise RuntimeError("a broken representation is skipped")
    def __repr__(self):
        return "<Chart>"

class Everything:
    def _repr_mimebundle_(self, include=None, exclude=None):
        return {{"text/html": "<i>all</i>", "application/json": {{"a": [1, 2]}}}}, {{
            "text/html": {{"isolated": True}}}}
    def _repr_svg_(self):
        return "<svg xmlns='http://www.w3.org/2000/svg'/>"
    def _repr_latex_(self):
        return r"$\\alpha$"
    def _repr_jpeg_(self):
        return b"\\xff\\xd8\\xff\\xe0 not really a jpeg"
    def _repr_json_(self):
        return {{"ignored": "the mimebundle gave application/json already"}}

class WrongTypes:
    def _repr_html_(self):
        return 42  # not text: skipped
    def _repr_png_(self):
        return None  # nothing to show
    def _repr_json_(self):
        return {{1, 2}}  # not JSON: skipped
    def _repr_markdown_(self):
        raise SystemExit("not even this ends the request")
    def _repr_latex_(self):
        raise KeyboardInterrupt  # raised by the code, not a real interrupt
    def __repr__(self):
        raise ValueError("even repr fails")
"""


async def test_display_sends_bundles_in_order(client: Any) -> None:
    await client.execute(FAKES)
    result = await client.execute(
        "display(Chart(), Table())\ndisplay(Everything(), 'text')\nx = 1"
    )
    assert [o.output_type for o in result.outputs] == ["display_data"] * 4
    chart, table, everything, text = result.outputs
    assert chart.png == PNG
    assert chart.text == "<Chart>"
    assert chart.html is None  # its _repr_html_ raised: skipped, never fatal
    assert chart.metadata == {"image/png": {"width": 3, "height": 2}}
    assert (table.html, table.markdown) == (
        "<table><tr><td>1</td></tr></table>",
        "| 1 |",
    )
    assert everything.html == "<i>all</i>"
    assert everything.json == {"a": [1, 2]}
    assert everything.svg == "<svg xmlns='http://www.w3.org/2000/svg'/>"
    assert everything.latex == "$\\alpha$"
    assert everything.jpeg == b"\xff\xd8\xff\xe0 not really a jpeg"
    assert everything.metadata["text/html"] == {"isolated": True}
    assert text.data == {"text/plain": "'text'"}
    assert result.images == [chart, everything]
    assert result.html == "<table><tr><td>1</td></tr></table>"
    assert result.outputs_dropped == 0
    assert (result.value, result.has_value, result.text) == (None, False, None)


async def test_broken_representations_are_skipped(client: Any) -> None:
    await client.execute(FAKES)
    result = await client.execute("display(WrongTypes(), Chart)\n'still running'")
    broken, cls = result.outputs
    assert list(broken.data) == ["text/plain"]
    assert broken.text == "<__main__.WrongTypes object (repr failed)>"
    assert cls.data == {
        "text/plain": "<class '__main__.Chart'>"
    }  # a class: no _repr_*_ called
    assert result.value == "still running"


async def test_rich_value_is_an_execute_result(client: Any) -> None:
    await client.execute(FAKES)
    result = await client.execute("display(Chart())\nTable()")
    shown, value = result.outputs
    assert (shown.output_type, value.output_type) == ("display_data", "execute_result")
    assert value.html == "<table><tr><td>1</td></tr></table>"
    assert result.text == "Table(1)"
    assert result.has_value
    plain = await client.execute("[1, 2]")
    assert (plain.outputs, plain.value, plain.text) == ([], [1, 2], "[1, 2]")


async def test_display_options(client: Any) -> None:
    await client.execute(FAKES)
    result = await client.execute(
        "display(Table(), include=['text/html'])\n"
        "display(Table(), exclude=['text/markdown'], metadata={'text/html': {'k': 1}})\n"
        "display({'text/markdown': '# hi', 'image/png': b'\\x89PNG'}, raw=True)"
    )
    only_html, no_markdown, raw = result.outputs
    assert only_html.data == {"text/html": "<table><tr><td>1</td></tr></table>"}
    assert set(no_markdown.data) == {"text/html", "text/plain"}
    assert no_markdown.metadata == {"text/html": {"k": 1}}
    assert raw.markdown == "# hi"
    assert raw.png == b"\x89PNG"


async def test_streamed_displays_come_in_order_with_text(client: Any) -> None:
    await client.execute(FAKES)
    items: list[Any] = []
    code = "print('before')\ndisplay(Chart())\nprint('after')\nTable()"
    async with client.stream(code) as events:
        async for item in events:
            items.append(item)
    kinds = []
    for item in items:
        if isinstance(item, bc.Output):
            kinds.append(item.output_type)
        elif kinds and kinds[-1].startswith(item.stream + ":"):
            kinds[-1] += item.data
        else:
            kinds.append(f"{item.stream}:{item.data}")
    assert kinds == [
        "stdout:before\n",
        "display_data",
        "stdout:after\n",
        "execute_result",
    ]
    result = events.result
    assert [o.output_type for o in result.outputs] == ["display_data", "execute_result"]
    assert result.outputs[0].png == PNG
    assert result.stdout == ""  # streamed


async def test_execute_with_on_output_gets_outputs(client: Any) -> None:
    await client.execute(FAKES)
    seen: list[Any] = []
    result = await client.execute("display(Chart())", on_output=seen.append)
    assert [type(item) for item in seen] == [bc.Output]
    assert result.images == seen


async def test_outputs_of_a_failed_exec_are_not_kept(client: Any) -> None:
    await client.execute(FAKES)
    with pytest.raises(bc.ExecutionFailed):
        await client.execute("display(Chart())\n1 / 0")
    after = await client.execute("None")
    assert after.outputs == []  # nothing of the failed request leaks into the next


async def test_display_is_a_builtin_of_every_session(client: Any) -> None:
    session = await client.open_session()
    try:
        result = await session.execute("display(1 + 1)\nrepr(display)")
        assert [o.text for o in result.outputs] == ["2"]
        assert result.value == "<built-in function display>"
    finally:
        await session.aclose()
