"""Integers of any size, worker encoder against the client codec (pure logic, no worker)."""

import json
from types import ModuleType
from typing import Any

import pytest

from beephost_protocol import decode_value, encode_value

HUGE = [10**5000, -(10**5000) - 1, 2**100_000, 10**4000, -(10**4000)]
SMALL = [0, -1, 2**200, 10**4000 - 1, -(10**4000) + 1]


@pytest.mark.parametrize("value", HUGE + SMALL, ids=lambda v: f"{v.bit_length()}-bits")
def test_both_directions_are_exact_through_json(session: Any, value: int) -> None:
    # json.dumps/loads refuse decimal ints over 4300 digits: the wire form must not
    # need them, in either direction.
    from_worker = json.loads(json.dumps(session.encode(value)))
    assert decode_value(from_worker) == value
    from_client = json.loads(json.dumps(encode_value(value)))
    assert session.decode(from_client) == value
    assert encode_value(value) == session.encode(value)


def test_only_huge_ints_are_tagged(session: Any) -> None:
    assert all(isinstance(session.encode(v), dict) for v in HUGE)
    assert all(type(session.encode(v)) is int for v in SMALL)
    assert encode_value(-(10**5000)) == {"$int": "-" + format(10**5000, "x")}


def test_a_huge_int_subclass_and_nested_ints(session: Any) -> None:
    class Big(int):
        pass

    value = [Big(10**5000), {"k": (10**5000,)}]
    wire = json.loads(json.dumps(session.encode(value)))
    assert decode_value(wire) == [10**5000, {"k": (10**5000,)}]


@pytest.mark.parametrize("bad", ["0x10", "1g", "", 5, None, "1_0"])
def test_a_malformed_int_tag_is_refused(
    worker: ModuleType, session: Any, bad: Any
) -> None:
    with pytest.raises(worker.WorkerError):
        session.decode({"$int": bad})
