"""Wire values in commands are nested at most MAX_VALUE_DEPTH deep (invalid_request)."""

from typing import Any

import pytest
from pydantic import ValidationError

from beephost_protocol import models
from beephost_protocol.models import MAX_VALUE_DEPTH


def nested(depth: int, leaf: Any = 0) -> Any:
    """A list ``depth`` levels deep (1 is a flat list), alternating with objects."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 == 0 else {"k": value}
    return value


COMMANDS = [
    lambda v: models.Evaluate(expression="x", locals={"x": v}),
    lambda v: models.ObjectCreate(target="list", args=[v]),
    lambda v: models.ObjectCreate(target="dict", kwargs={"v": v}),
    lambda v: models.ObjectSetAttr(handle="h", name="a", value=v),
    lambda v: models.ObjectCall(handle="h", args=[v]),
    lambda v: models.ObjectCall(handle="h", kwargs={"v": v}),
]


@pytest.mark.parametrize("build", COMMANDS)
def test_the_deepest_allowed_value_passes(build: Any) -> None:
    build(nested(MAX_VALUE_DEPTH))  # args, kwargs and locals hold values: not counted


@pytest.mark.parametrize("build", COMMANDS)
@pytest.mark.parametrize("depth", [MAX_VALUE_DEPTH + 1, 5000])
def test_a_deeper_value_is_refused(build: Any, depth: int) -> None:
    with pytest.raises(ValidationError, match=f"nested deeper than {MAX_VALUE_DEPTH}"):
        build(nested(depth))


def test_wide_values_are_not_deep() -> None:
    wide = {str(i): [[i]] * 100 for i in range(1000)}
    assert models.Evaluate(expression="x", locals={"x": wide}).locals["x"] is wide


def test_decoding_json_refuses_it_too() -> None:
    # jiter (the HTTP backend's fast lane) has a limit of its own near ours.
    def frame(depth: int) -> str:
        return '{"expression": "x", "locals": {"x": ' + "[" * depth + "]" * depth + "}}"

    assert models.Evaluate.model_validate_json(frame(150)).locals["x"]
    with pytest.raises(
        ValidationError, match=r"recursion limit exceeded|nested deeper"
    ):
        models.Evaluate.model_validate_json(frame(300))
