"""The SDK's side of the value table (docs/protocol/pipe.md, section 8): the client
codec's forms, their JSON Schema, and what cannot travel."""

import datetime
import fractions
import json
import numbers
import uuid
from decimal import Decimal
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from beephost_protocol import decode_value, encode_value
from beephost_protocol.schema import SCHEMA_PATH

VALUES: list[Any] = [
    {1, "a", (2, b"x")},
    frozenset({frozenset({1.5})}),
    1 - 2j,
    complex(float("nan"), 1),
    Decimal("1.10"),
    Decimal("-Infinity"),
    datetime.datetime(2024, 5, 17, 12, 30, 0, 5),
    datetime.datetime(
        2024, 5, 17, tzinfo=datetime.timezone(datetime.timedelta(hours=-3))
    ),
    datetime.date(2024, 5, 17),
    datetime.time(23, 59, 59, 999999, tzinfo=datetime.UTC),
    datetime.timedelta(days=-3, microseconds=1),
    uuid.UUID(int=7),
    PurePosixPath("/data/x.csv"),
]


@pytest.fixture(scope="module")
def value_schema() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return Draft202012Validator({"$ref": "#/$defs/Value", "$defs": schema["$defs"]})


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_each_form_round_trips_and_matches_the_schema(
    value: Any, value_schema: Draft202012Validator
) -> None:
    wire = encode_value(value)
    value_schema.validate(wire)
    back = decode_value(json.loads(json.dumps(wire, allow_nan=False)))
    assert type(back) is type(value)
    assert _exact(back) == _exact(value)  # nan parts, offsets, Decimal's exponent


def _exact(value: Any) -> str:
    """``repr``, with a set's members sorted: the order a set iterates in depends on
    the hash seed and on the order its members were added, which a round trip changes.
    """
    if isinstance(value, set | frozenset):
        return f"{type(value).__name__}({sorted(_exact(item) for item in value)})"
    return repr(value)


class Int64:
    """A numpy-like integer: registered with the ABC, no int subclass."""

    def __int__(self) -> int:
        return 7


numbers.Integral.register(Int64)


class NumpyBool:
    """numpy.bool_'s shape: no number to the ABCs, named in the numpy module."""

    def __bool__(self) -> bool:
        return True


NumpyBool.__module__ = "numpy"
NumpyBool.__name__ = "bool_"


class Timedelta64(Int64):
    """numpy.timedelta64's shape: an Integral with a unit."""


Timedelta64.__module__ = "numpy"
Timedelta64.__name__ = "timedelta64"


def test_numbers_of_other_libraries_are_sent_as_numbers() -> None:
    assert encode_value([Int64(), True, NumpyBool()]) == [7, True, True]
    assert type(encode_value(Int64())) is int
    assert type(encode_value(NumpyBool())) is bool
    with pytest.raises(TypeError, match="by value"):
        encode_value(Timedelta64())


@pytest.mark.parametrize(
    "value",
    [fractions.Fraction(1, 3), PureWindowsPath("C:/x"), {1: {2}}.values()],
    ids=repr,
)
def test_what_has_no_form_is_refused(value: Any) -> None:
    with pytest.raises(TypeError, match="by value"):
        encode_value(value)


def test_a_path_decodes_pure_it_names_a_file_of_the_server() -> None:
    path = decode_value({"$path": "/srv/data"})
    assert type(path) is PurePosixPath
