"""The MCP server over stdio on a fixed backend (a real HTTP backend process), driven
by the MCP SDK's own client: every tool, its errors, and what reaches the model."""

import asyncio
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.types import EmbeddedResource

from tests.integration.contract.servers import ServerProcess
from tests.integration.mcp.conftest import BACKEND_TOKEN
from tests.integration.mcp.support import (
    PNG_CODE,
    PNG_SIGNATURE,
    error_code,
    images_of,
    read_log,
    stdio_session,
    structured,
    text_of,
    tiny_png,
)

pytestmark = pytest.mark.anyio

TOOLS = {
    "run_python",
    "install_packages",
    "write_file",
    "read_file",
    "list_files",
    "remove_file",
    "reset",
    "interrupt",
}


async def test_tools_are_listed_with_schemas_and_descriptions(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    async with stdio_session(fixed_env, errlog) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        templates = (await session.list_resource_templates()).resource_templates
    assert set(tools) == TOOLS
    run = tools["run_python"]
    assert run.input_schema["required"] == ["code"]
    assert run.input_schema["properties"]["timeout"]["anyOf"][0]["maximum"] == 120
    assert "persistent" in (run.description or "")
    assert all(tool.description for tool in tools.values())
    assert [t.uri_template for t in templates] == ["workspace://{+path}"]


async def test_state_is_kept_across_calls_and_the_result_is_structured(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    async with stdio_session(fixed_env, errlog) as session:
        first = await session.call_tool("run_python", {"code": "x = 20\nprint('set')"})
        second = await session.call_tool("run_python", {"code": "x * 2 + 1"})
    assert error_code(first) is None
    assert "set" in text_of(first)
    assert structured(second)["result"] == "41"
    assert structured(second)["value"] == 41
    assert "[result]\n41" in text_of(second)


async def test_an_image_arrives_as_png_image_content(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    async with stdio_session(fixed_env, errlog) as session:
        result = await session.call_tool("run_python", {"code": PNG_CODE})
    (image,) = images_of(result)
    assert image.startswith(PNG_SIGNATURE)
    assert structured(result)["images_sent"] == 1
    assert "shown" in text_of(result)


async def test_images_past_the_count_limit_are_counted_not_sent(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    env = fixed_env | {"BEEPHOST_MCP_MAX_IMAGES": "1"}
    async with stdio_session(env, errlog) as session:
        result = await session.call_tool(
            "run_python", {"code": PNG_CODE + "display(Picture())\ndisplay(Picture())"}
        )
    assert len(images_of(result)) == 1
    assert structured(result)["images_skipped"] == 2
    assert "2 more not sent" in text_of(result)


async def test_long_output_is_cut_in_the_middle_with_a_note(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    code = "print('HEAD'); print('x' * 50000); print('TAIL')"
    async with stdio_session(fixed_env, errlog) as session:
        result = await session.call_tool("run_python", {"code": code})
    text = text_of(result)
    assert "HEAD" in text
    assert "TAIL" in text
    assert "characters of stdout cut here" in text
    assert len(text) < 2500
    assert structured(result)["truncated"]["stdout"] > 48000


async def test_a_failure_is_a_typed_error_with_the_users_traceback_only(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    code = "def inner():\n    return 1 / 0\nprint('before')\ninner()"
    async with stdio_session(fixed_env, errlog) as session:
        result = await session.call_tool("run_python", {"code": code})
        after = await session.call_tool("run_python", {"code": "inner.__name__"})
    assert error_code(result) == "python_error"
    error = structured(result)["error"]
    assert error["data"]["type"] == "ZeroDivisionError"
    assert "inner" in error["message"]
    assert "ZeroDivisionError" in error["message"]
    # Only the cell's frames: none of the worker's, the server's or a library's.
    frames = [
        line
        for line in error["message"].splitlines()
        if line.lstrip().startswith("File ")
    ]
    assert frames
    assert all("<beephost-" in line for line in frames)
    assert "before" in structured(result)["stdout"]  # what ran before the error
    assert structured(after)["result"] == "'inner'"  # definitions before it kept


async def test_a_run_past_its_timeout_is_a_typed_timeout(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    async with stdio_session(fixed_env, errlog) as session:
        result = await session.call_tool(
            "run_python", {"code": "import time\ntime.sleep(30)", "timeout": 1}
        )
        again = await session.call_tool("run_python", {"code": "1 + 1"})
    assert error_code(result) == "timeout"
    assert structured(again)["result"] == "2"


async def test_bad_arguments_are_tool_errors_not_crashes(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    async with stdio_session(fixed_env, errlog) as session:
        negative = await session.call_tool("run_python", {"code": "1", "timeout": -1})
        too_long = await session.call_tool("run_python", {"code": "1", "timeout": 1e9})
        missing = await session.call_tool("run_python", {})
        escape = await session.call_tool("read_file", {"path": "../../etc/passwd"})
        bad_b64 = await session.call_tool(
            "write_file", {"path": "a.bin", "content": "%%%", "encoding": "base64"}
        )
        still = await session.call_tool("run_python", {"code": "'alive'"})
    for result in (negative, too_long, missing):
        assert result.is_error
        assert "timeout" in text_of(result) or "code" in text_of(result)
    assert error_code(escape) == "invalid_argument"
    assert error_code(bad_b64) == "invalid_argument"
    assert structured(still)["result"] == "'alive'"


async def test_files_round_trip_as_text_image_and_resource(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    import base64

    png = tiny_png()
    async with stdio_session(fixed_env, errlog) as session:
        wrote = await session.call_tool(
            "write_file", {"path": "data/notes.txt", "content": "hello\nworld\n"}
        )
        await session.call_tool(
            "write_file",
            {
                "path": "data/dot.png",
                "content": base64.b64encode(png).decode(),
                "encoding": "base64",
            },
        )
        counted = await session.call_tool(
            "run_python", {"code": "len(open('data/notes.txt').read().splitlines())"}
        )
        text = await session.call_tool("read_file", {"path": "data/notes.txt"})
        image = await session.call_tool("read_file", {"path": "data/dot.png"})
        listing = await session.call_tool("list_files", {"path": "data"})
        resource = await session.read_resource("workspace://data/notes.txt")
        removed = await session.call_tool(
            "remove_file", {"path": "data", "recursive": True}
        )
        gone = await session.call_tool("read_file", {"path": "data/notes.txt"})
    assert structured(wrote)["size"] == 12
    assert structured(counted)["result"] == "2"
    assert text_of(text) == "hello\nworld\n"
    assert images_of(image) == [png]
    names = [e["path"] for e in structured(listing)["entries"]]
    assert names == ["data/dot.png", "data/notes.txt"]
    (contents,) = resource.contents
    assert getattr(contents, "text", None) == "hello\nworld\n"
    assert structured(removed)["removed"] == 3
    assert error_code(gone) == "not_found"


async def test_reset_restarts_the_interpreter_and_keeps_files(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    async with stdio_session(fixed_env, errlog) as session:
        await session.call_tool(
            "run_python", {"code": "kept = open('k.txt', 'w').write('k')"}
        )
        reset = await session.call_tool("reset", {})
        after = await session.call_tool(
            "run_python",
            {"code": "import os\n('kept' in globals(), os.path.exists('k.txt'))"},
        )
        whole = await session.call_tool("reset", {"new_sandbox": True})
    assert structured(reset)["reset"] == "interpreter"
    assert structured(after)["result"] == "(False, True)"
    # One fixed backend: no new sandbox to be had, and the model is told so.
    assert error_code(whole) == "invalid_argument"


async def test_install_without_a_controller_is_a_typed_error(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    async with stdio_session(fixed_env, errlog) as session:
        result = await session.call_tool("install_packages", {"packages": ["tabulate"]})
    assert error_code(result) == "install_failed"
    assert "fixed backend" in text_of(result)


async def _run_until_it_prints(
    session: ClientSession, code: str
) -> tuple["asyncio.Task[object]", asyncio.Event]:
    """Start run_python in a task; the event is set at its first progress note."""
    started = asyncio.Event()

    async def progress(
        progress: float, total: float | None, message: str | None
    ) -> None:
        if message and "started" in message:
            started.set()

    task = asyncio.create_task(
        session.call_tool("run_python", {"code": code}, progress_callback=progress)
    )
    await asyncio.wait_for(started.wait(), 30)
    return task, started


LONG = "import time\nprint('started', flush=True)\ntime.sleep(60)\nfinished = True"


async def test_progress_notifications_carry_printed_lines(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    messages: list[str] = []

    async def progress(
        progress: float, total: float | None, message: str | None
    ) -> None:
        messages.append(message or "")

    code = "import time\nfor i in range(3):\n    print(f'step {i}', flush=True)\n    time.sleep(0.5)"
    async with stdio_session(fixed_env, errlog) as session:
        result = await session.call_tool(
            "run_python", {"code": code}, progress_callback=progress
        )
    assert structured(result)["stdout"] == "step 0\nstep 1\nstep 2\n"
    assert any(m.startswith("step") for m in messages)


async def test_the_interrupt_tool_stops_a_running_call(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    async with stdio_session(fixed_env, errlog) as session:
        await session.call_tool("run_python", {"code": "before = 1"})
        task, _ = await _run_until_it_prints(session, LONG)
        interrupted = await session.call_tool("interrupt", {})
        result = await task
        state = await session.call_tool(
            "run_python", {"code": "(before, 'finished' in globals())"}
        )
    assert structured(interrupted)["interrupted"] is True
    assert isinstance(result, type(interrupted))
    assert error_code(result) in {"interrupted", "python_error"}
    assert "KeyboardInterrupt" in text_of(result) or error_code(result) == "interrupted"
    assert structured(state)["result"] == "(1, False)"


async def test_an_mcp_cancellation_interrupts_the_run(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    async with stdio_session(fixed_env, errlog) as session:
        await session.call_tool("run_python", {"code": "before = 2"})
        task, _ = await _run_until_it_prints(session, LONG)
        task.cancel()  # the SDK's client sends notifications/cancelled
        with pytest.raises(asyncio.CancelledError):
            await task
        state = await session.call_tool(
            "run_python", {"code": "(before, 'finished' in globals())"}
        )
    # Interrupted, not run on to its end; the interpreter kept its variables.
    assert structured(state)["result"] == "(2, False)"


async def test_the_backend_token_never_reaches_the_log_or_the_model(
    fixed_env: dict[str, str], errlog: Path, backend: ServerProcess
) -> None:
    env = fixed_env | {"BEEPHOST_MCP_BACKEND_URL": backend.url}
    seen: list[str] = []
    async with stdio_session(env, errlog) as session:
        for code in ("import os\ndict(os.environ)", "1/0"):
            seen.append(text_of(await session.call_tool("run_python", {"code": code})))
        seen.append(text_of(await session.call_tool("read_file", {"path": "nope"})))
    log = read_log(errlog)
    assert "serving MCP over stdio" in log  # the server did log
    assert BACKEND_TOKEN not in log
    assert not any(BACKEND_TOKEN in text for text in seen)


async def test_a_wrong_backend_token_is_a_typed_error(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    env = fixed_env | {"BEEPHOST_MCP_BACKEND_TOKEN": "wrong-token-wrong-token"}
    async with stdio_session(env, errlog) as session:
        result = await session.call_tool("run_python", {"code": "1"})
    assert error_code(result) == "sandbox_unavailable"
    assert "wrong-token" not in read_log(errlog)


async def test_a_table_arrives_as_embedded_html_beside_its_text(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    code = (
        "class Table:\n"
        "    def _repr_html_(self):\n"
        "        return '<table><tr><td>1</td></tr></table>'\n"
        "    def __repr__(self):\n"
        "        return 'Table(1)'\n"
        "Table()"
    )
    async with stdio_session(fixed_env, errlog) as session:
        result = await session.call_tool("run_python", {"code": code})
    (html,) = [b.resource for b in result.content if isinstance(b, EmbeddedResource)]
    assert html.mime_type == "text/html"
    assert getattr(html, "text", "") == "<table><tr><td>1</td></tr></table>"
    assert structured(result)["result"] == "Table(1)"


async def test_an_image_past_the_size_limit_is_counted_not_sent(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    # A 64x64 image of random pixels: about 12 KiB, past a limit of 1 KiB; the small
    # one of PNG_CODE still goes.
    big = (
        "import os\n"
        "class Noise(Picture):\n"
        "    def _repr_png_(self):\n"
        "        raw = b''.join(b'\\x00' + os.urandom(64 * 3) for _ in range(64))\n"
        "        header = struct.pack('>IIBBBBB', 64, 64, 8, 2, 0, 0, 0)\n"
        "        return (b'\\x89PNG\\r\\n\\x1a\\n' + _chunk(b'IHDR', header)\n"
        "                + _chunk(b'IDAT', zlib.compress(raw)) + _chunk(b'IEND', b''))\n"
        "display(Noise())\n"
    )
    env = fixed_env | {"BEEPHOST_MCP_MAX_IMAGE_BYTES": "1024"}
    async with stdio_session(env, errlog) as session:
        result = await session.call_tool("run_python", {"code": PNG_CODE + big})
    (sent,) = images_of(result)
    assert len(sent) < 1024
    assert structured(result)["images_sent"] == 1
    assert structured(result)["images_skipped"] == 1
    assert "1 more not sent" in text_of(result)


async def test_an_idle_sandbox_is_released_and_the_model_told(
    fixed_env: dict[str, str], errlog: Path
) -> None:
    env = fixed_env | {"BEEPHOST_MCP_IDLE_TIMEOUT": "1"}
    async with stdio_session(env, errlog) as session:
        await session.call_tool("run_python", {"code": "x = 1"})
        await asyncio.sleep(2.5)  # the reaper looks every 0.25 s
        after = await session.call_tool("run_python", {"code": "x"})
    assert "releasing a sandbox idle" in read_log(errlog)
    assert error_code(after) == "python_error"  # a new interpreter: x is gone
    assert "1 idle seconds" in structured(after)["notice"]
    assert text_of(after).startswith("[note: a new sandbox")
