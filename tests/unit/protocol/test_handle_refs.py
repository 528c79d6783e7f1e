"""Malformed `$handle` references are refused by the models, before any transport runs them."""

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from beephost_protocol import models
from beephost_protocol.models import MAX_VALUE_DEPTH


@pytest.mark.parametrize("inner", [5, "h1", None, [], {}, {"id": 1}, {"repr": "x"}])
def test_a_malformed_handle_is_refused_wherever_a_value_goes(inner: Any) -> None:
    ref = {"$handle": inner}
    builds: list[Callable[[], object]] = [
        lambda: models.Evaluate(expression="v", locals={"v": ref}),
        lambda: models.ObjectCall(handle="h", args=[[ref]]),
        lambda: models.ObjectCall(handle="h", kwargs={"k": {"$tuple": [ref]}}),
        lambda: models.ObjectSetAttr(handle="h", name="a", value={"x": ref}),
    ]
    for build in builds:
        with pytest.raises(ValidationError, match=r"\$handle"):
            build()


def test_a_well_formed_handle_and_a_dict_holding_the_key_are_accepted() -> None:
    ref = {"$handle": {"id": "h1", "type": "date", "repr": "d"}}
    plain = {"$dict": {"$handle": 5}}
    call = models.ObjectCall(handle="h", args=[ref, plain])
    assert call.args == [ref, plain]


def test_the_inside_of_dict_counts_one_level() -> None:
    def wrapped(depth: int) -> Any:
        value: Any = 0
        for _ in range(depth - 2):
            value = [value]
        return {"$dict": {"k": value}}

    models.Evaluate(expression="v", locals={"v": wrapped(MAX_VALUE_DEPTH)})
    with pytest.raises(ValidationError, match="nested deeper"):
        models.Evaluate(expression="v", locals={"v": wrapped(MAX_VALUE_DEPTH + 1)})
