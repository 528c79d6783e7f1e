"""The worker's encoder against the client's decoder, in-process (pure logic, no worker)."""

import math
from collections import OrderedDict
from enum import IntEnum
from types import ModuleType
from typing import Any

import pytest

from beephost_protocol import Handle, decode_value, encode_value


class Color(IntEnum):
    RED = 1


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        7,
        2**100,
        0.1,
        "ü",
        [1, (2, 3)],
        {"k": [b"x"]},
        {1: 2},
        {"$x": 1},
        -math.inf,
    ],
    ids=repr,
)
def test_worker_encoding_decodes_to_the_same_value(session: Any, value: object) -> None:
    assert decode_value(session.encode(value)) == value


def test_client_encoding_decodes_in_the_worker(session: Any) -> None:
    value = {"t": (1, b"\x01"), "m": {2: "two"}, "f": -math.inf}
    assert session.decode(encode_value(value)) == value


def test_subclasses_travel_as_their_base_value(session: Any) -> None:
    assert session.encode(Color.RED) == 1
    assert type(session.encode(Color.RED)) is int
    assert session.encode(OrderedDict(a=1)) == {"a": 1}


def test_non_json_objects_become_handles_and_resolve_back(session: Any) -> None:
    obj = object()
    wire = session.encode([obj])
    handle = decode_value(wire)[0]
    assert isinstance(handle, Handle)
    assert handle.type == "object"
    assert session.decode(encode_value(handle)) is obj


def test_cycles_become_handles(session: Any) -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    encoded = session.encode(cyclic)
    assert encoded[0] == 1
    assert "$handle" in encoded[1]


def test_handle_quota_is_enforced(session: Any, worker: ModuleType) -> None:
    for _ in range(3):
        session.encode(object())
    with pytest.raises(worker.WorkerError) as info:
        session.encode(object())
    assert info.value.code == "quota_exceeded"


def test_unknown_handle_is_not_found(session: Any, worker: ModuleType) -> None:
    with pytest.raises(worker.WorkerError) as info:
        session.decode({"$handle": {"id": "nope"}})
    assert info.value.code == "not_found"


def test_malformed_tag_is_invalid(session: Any, worker: ModuleType) -> None:
    with pytest.raises(worker.WorkerError) as info:
        session.decode({"$bytes": "***"})
    assert info.value.code == "invalid_request"


def test_user_tracebacks_hide_worker_frames(session: Any, worker: ModuleType) -> None:
    with pytest.raises(ZeroDivisionError) as info:
        session.op_exec({"code": "x = 1\n1 / 0"})
    payload = worker.error_payload(info.value)
    assert payload["code"] == "execution_failed"
    assert payload["data"]["type"] == "ZeroDivisionError"
    assert "worker.py" not in payload["data"]["traceback"]
    assert "1 / 0" in payload["data"]["traceback"]  # the user's source line is shown


def test_exec_returns_the_trailing_expression(session: Any) -> None:
    assert session.op_exec({"code": "a = 20\na + 1"}) == {
        "value": 21,
        "has_value": True,
    }
    assert session.op_exec({"code": "b = 1"}) == {"value": None, "has_value": False}


def test_lookup_resolves_modules_builtins_and_namespace(
    session: Any, worker: ModuleType
) -> None:
    session.op_exec({"code": "class Point:\n    def __init__(self, x): self.x = x"})
    assert session.lookup("collections.OrderedDict") is OrderedDict
    assert session.lookup("len") is len
    assert session.lookup("Point").__name__ == "Point"
    with pytest.raises(worker.WorkerError, match="not a dotted name"):
        session.lookup("os.system; rm")
    with pytest.raises(worker.WorkerError, match="cannot import"):
        session.lookup("no_such_module_xyz.thing")
