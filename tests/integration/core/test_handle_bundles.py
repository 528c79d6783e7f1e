"""A handle returned as a reply's value carries its rich bundle, within the limits."""

from typing import Any

import pytest

from beephost_core import Executor
from beephost_protocol import models
from tests.integration.core.conftest import MakeExecutor

pytestmark = pytest.mark.anyio


@pytest.fixture
def executor_defaults() -> dict[str, Any]:
    return {"prewarm": 0}


async def value_of(executor: Executor, expression: str) -> Any:
    return (await executor.run(models.Evaluate(expression=expression)))["value"]


async def test_the_returned_handle_carries_its_bundle(
    make_rich_executor: MakeExecutor,
) -> None:
    executor = await make_rich_executor()
    handle = (await value_of(executor, "Html(3)"))["$handle"]
    assert handle["repr"] == "Html(3)"
    assert handle["bundle"] == {
        "output_type": "execute_result",
        "data": {"text/html": "hhh", "text/plain": "Html(3)"},
        "metadata": {},
    }
    # object.call and object.get_attr return handles with bundles too.
    called = await executor.run(models.ObjectCall(handle=handle["id"], method="again"))
    assert called["value"]["$handle"]["bundle"]["data"]["text/html"] == "hhhh"


async def test_only_a_rich_top_level_handle_has_a_bundle(
    make_rich_executor: MakeExecutor,
) -> None:
    executor = await make_rich_executor()
    assert "bundle" not in (await value_of(executor, "Plain()"))["$handle"]
    nested = await value_of(executor, "[Html(1), {'k': Html(2)}]")
    assert "bundle" not in nested[0]["$handle"]
    assert "bundle" not in nested[1]["k"]["$handle"]


async def test_a_bundle_over_the_display_limit_names_what_was_left_out(
    make_rich_executor: MakeExecutor,
) -> None:
    executor = await make_rich_executor(max_display_bytes=1000)
    small = (await value_of(executor, "Html(999)"))["$handle"]["bundle"]
    assert small["data"]["text/html"] == "h" * 999
    large = (await value_of(executor, "Html(1001)"))["$handle"]["bundle"]
    assert large["data"] == {"text/plain": "Html(1001)"}
    assert large["metadata"] == {"dropped": {"text/html": 1001}}


async def test_exec_value_handle_and_execute_result_share_one_bundle(
    make_rich_executor: MakeExecutor,
) -> None:
    executor = await make_rich_executor()
    result = await executor.run(models.Execute(code="Html(2)"))
    (output,) = result["outputs"]
    assert result["value"]["$handle"]["bundle"] == output


async def test_a_bundle_counts_towards_its_own_request_only(
    make_rich_executor: MakeExecutor,
) -> None:
    executor = await make_rich_executor(max_display_total_bytes=2500)
    first = (await value_of(executor, "Html(2000)"))["$handle"]["bundle"]
    assert first["data"]["text/html"] == "h" * 2000
    # The next request has the whole budget again.
    result = await executor.run(models.Execute(code="display(Html(2000))"))
    assert result["outputs"][0]["data"]["text/html"] == "h" * 2000
    assert result["outputs_dropped"] == 0
