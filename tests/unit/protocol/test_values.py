"""The client-side value codec: lossless for every JSON-like type, tags for the rest."""

import math

import pytest

from beephost_protocol import Handle, decode_value, encode_value

ROUND_TRIPS = [
    None,
    True,
    0,
    -(2**200),
    1.5,
    "ünïcødé ✓ 𝄞",
    [1, [2, [3]]],
    {"a": {"b": [1, "x"]}},
    (1, "two", (3.0,)),
    b"\x00\xffbytes",
    {1: "int key", (1, 2): "tuple key"},
    {"$float": "not a tag"},
    math.inf,
    -math.inf,
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=repr)
def test_round_trip(value: object) -> None:
    assert decode_value(encode_value(value)) == value


def test_nan_round_trips_as_nan() -> None:
    assert encode_value(math.nan) == {"$float": "nan"}
    assert math.isnan(decode_value({"$float": "nan"}))


def test_handles_decode_and_encode_back() -> None:
    wire = {"$handle": {"id": "h1", "type": "Foo", "repr": "<Foo>"}}
    handle = decode_value(wire)
    assert handle == Handle("h1", "Foo", "<Foo>")
    assert encode_value([handle]) == [wire]


def test_unsupported_type_is_refused() -> None:
    with pytest.raises(TypeError, match="use a handle"):
        encode_value(object())


def test_unknown_tag_decodes_as_a_plain_dict() -> None:
    # Forward compatible, and the same rule as the worker's decoder.
    assert decode_value({"$nope": {"$float": "inf"}}) == {"$nope": float("inf")}
