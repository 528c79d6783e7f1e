"""Rich outputs in the core: size limits, streaming order, and no cost at start."""

import sys
from pathlib import Path
from typing import Any

import pytest

from beephost_core import WORKER_SCRIPT, Executor
from beephost_core.config import default_worker_env
from beephost_protocol import models
from tests.integration.core.conftest import MakeExecutor

pytestmark = pytest.mark.anyio


@pytest.fixture
def executor_defaults() -> dict[str, Any]:
    return {"prewarm": 0}


async def run(executor: Executor, code: str, **kwargs: Any) -> dict[str, Any]:
    return await executor.run(models.Execute(code=code, **kwargs))


async def test_a_value_over_the_output_limit_is_left_out_and_named(
    make_rich_executor: MakeExecutor,
) -> None:
    executor = await make_rich_executor(max_display_bytes=1000)
    result = await run(executor, "display(Html(999), Html(1001))")
    small, large = result["outputs"]
    assert small == {
        "output_type": "display_data",
        "data": {"text/html": "h" * 999, "text/plain": "Html(999)"},
        "metadata": {},
    }
    assert large["data"] == {"text/plain": "Html(1001)"}
    assert large["metadata"] == {"dropped": {"text/html": 1001}}
    assert result["outputs_dropped"] == 1001


async def test_outputs_past_the_request_limit_keep_a_note(
    make_rich_executor: MakeExecutor,
) -> None:
    executor = await make_rich_executor(max_display_total_bytes=2500)
    result = await run(executor, "for _ in range(3): display(Html(1000))")
    first, second, third = result["outputs"]
    assert "text/html" in first["data"]
    assert "text/html" in second["data"]
    # The third's HTML would pass 2500 bytes; its short text/plain still fits.
    assert third["data"] == {"text/plain": "Html(1000)"}
    assert third["metadata"] == {"dropped": {"text/html": 1000}}
    assert result["outputs_dropped"] == 1000
    result = await run(executor, "display(Html(3000))")  # the limit is per request
    assert result["outputs"][0]["metadata"] == {"dropped": {"text/html": 3000}}
    assert result["outputs"][0]["data"] == {"text/plain": "Html(3000)"}
    result = await run(executor, "display(Html(100))")
    assert "text/html" in result["outputs"][0]["data"]


async def test_a_note_replaces_text_over_the_limit(make_executor: MakeExecutor) -> None:
    executor = await make_executor(max_display_bytes=100)
    result = await run(executor, "display('x' * 200)")
    (output,) = result["outputs"]
    assert output["data"] == {
        "text/plain": "[output cut: text/plain over the size limit]"
    }
    assert output["metadata"] == {"dropped": {"text/plain": 202}}
    assert result["outputs_dropped"] == 202


async def test_streamed_outputs_are_events_in_order(
    make_rich_executor: MakeExecutor,
) -> None:
    executor = await make_rich_executor()
    events: list[tuple[str, Any]] = []
    result = await executor.run(
        models.Execute(code="print('a')\ndisplay(Html(3))\nprint('b')", stream=True),
        lambda event, data: events.append((event, data)),
    )
    assert events == [
        ("stdout", "a\n"),
        (
            "display",
            {
                "output_type": "display_data",
                "data": {"text/html": "hhh", "text/plain": "Html(3)"},
                "metadata": {},
            },
        ),
        ("stdout", "b\n"),
    ]
    assert "outputs" not in result  # sent as events


async def test_a_plain_result_is_unchanged(make_executor: MakeExecutor) -> None:
    executor = await make_executor()
    result = await run(executor, "1 + 1")
    assert set(result) == {
        "value",
        "has_value",
        "stdout",
        "stderr",
        "stdout_dropped",
        "stderr_dropped",
    }
    # display() outside exec shows nothing, and nothing leaks into the next exec.
    assert await executor.run(models.Evaluate(expression="display(1)")) == {
        "value": None
    }
    assert "outputs" not in await run(executor, "2")


async def test_the_worker_imports_nothing_new_at_start(
    make_executor: MakeExecutor,
) -> None:
    executor = await make_executor()
    result = await run(
        executor,
        "import sys\n"
        "sorted(m for m in sys.modules if m.split('.')[0] not in sys.stdlib_module_names)",
    )
    # The inline matplotlib backend is a module object made in place, not an import.
    assert result["value"] == ["__main__", "beephost_inline"]
    modules = await run(executor, "import sys\nsorted(sys.modules)")
    assert "typing" not in modules["value"]
    assert not {"base64", "io", "json"} - set(modules["value"])  # already needed


async def test_matplotlib_defaults_to_agg_unless_the_environment_chose(
    make_executor: MakeExecutor,
) -> None:
    executor = await make_executor()
    result = await run(executor, "import os\nos.environ.get('MPLBACKEND')")
    assert result["value"] == "Agg"
    chosen = await make_executor(env={**default_worker_env(), "MPLBACKEND": "svg"})
    result = await run(chosen, "import os\nos.environ.get('MPLBACKEND')")
    assert result["value"] == "svg"


def test_worker_is_still_stdlib_only() -> None:
    source = Path(WORKER_SCRIPT).read_text()
    imported = {
        line.split()[1].split(".")[0]
        for line in source.splitlines()
        if line.startswith(("import ", "from ")) and "__future__" not in line
    }
    assert imported <= set(sys.stdlib_module_names)
