"""The OpenAPI document types every wire value as the value table's ``Value`` schema."""

import datetime
import uuid
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from beephost_http_backend import Settings, create_app
from beephost_protocol import Handle, encode_value
from beephost_protocol.schema import VALUE_TAGS

VALUE = {"$ref": "#/components/schemas/Value"}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return create_app(Settings()).openapi()


@pytest.fixture(scope="module")
def value_schema(openapi: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({**VALUE, "components": openapi["components"]})


def test_every_value_field_is_a_value(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    for name in ("ValueResult", "ExecResult", "SetAttributeRequest"):
        assert schemas[name]["properties"]["value"]["$ref"] == VALUE["$ref"], name
    for name in ("ObjectCreateRequest", "CallRequest"):
        assert schemas[name]["properties"]["args"]["items"] == VALUE, name
        assert schemas[name]["properties"]["kwargs"]["additionalProperties"] == VALUE
    assert schemas["Evaluate"]["properties"]["locals"]["additionalProperties"] == VALUE
    documented = {
        next(iter(schemas[name]["properties"]))
        for name in schemas
        if name.startswith("TaggedValue")
    }
    assert documented == set(VALUE_TAGS)


@pytest.mark.parametrize(
    "value",
    [
        {1, (2, "x")},
        frozenset({b"y"}),
        1 + 2j,
        Decimal("1.10"),
        datetime.datetime(2024, 5, 17, tzinfo=datetime.UTC),
        datetime.timedelta(seconds=-1),
        uuid.UUID(int=3),
        PurePosixPath("/a"),
        [float("nan"), -(2**14000), {"$ref": "x"}, {1: None}],
        Handle("h1", "fractions.Fraction", "Fraction(1, 3)"),
    ],
    ids=lambda value: type(value).__name__,
)
def test_what_the_codec_sends_is_a_documented_value(
    value_schema: Draft202012Validator, value: Any
) -> None:
    value_schema.validate(encode_value(value))


@pytest.mark.parametrize(
    "wire",
    [{"$timedelta": [1]}, {"$complex": [1, 2, 3]}, {"$uuid": 5}, {"$unknown": 1}],
    ids=repr,
)
def test_a_malformed_form_is_not_a_value(
    value_schema: Draft202012Validator, wire: Any
) -> None:
    assert not value_schema.is_valid(wire)
