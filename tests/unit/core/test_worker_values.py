"""The worker's side of the value table: what falls back to a handle, what is refused;
pure logic, no worker process."""

import datetime
import decimal
from types import ModuleType
from typing import Any

import pytest

from beephost_protocol import decode_value


@pytest.mark.parametrize(
    "wire",
    [
        {"$decimal": "one"},
        {"$decimal": 1},
        {"$date": "2024-13-01"},
        {"$datetime": 20240517},
        {"$time": "25:00"},
        {"$timedelta": [1, 2]},
        {"$timedelta": [1.5, 0, 0]},
        {"$timedelta": [True, 0, 0]},
        {"$timedelta": [10**10, 0, 0]},
        {"$complex": [1]},
        {"$complex": ["1", 2]},
        {"$uuid": "not-a-uuid"},
        {"$path": ["/a"]},
        {"$set": 5},
        {"$set": [[1]]},
        {"$frozenset": [{"a": 1}]},
    ],
    ids=repr,
)
def test_a_malformed_form_is_invalid_request(
    session: Any, worker: ModuleType, wire: Any
) -> None:
    with pytest.raises(worker.WorkerError) as info:
        session.decode(wire)
    assert info.value.code == "invalid_request"


def test_a_set_with_an_object_is_one_handle_whatever_its_size(session: Any) -> None:
    # Members never become handles of their own: three would be the session's quota.
    members = {object() for _ in range(10)} | {1}
    wire = session.encode([members, frozenset({frozenset({object()})})])
    assert [next(iter(item)) for item in wire] == ["$handle", "$handle"]
    assert wire[0]["$handle"]["type"] == "set"
    assert len(session.handles) == 2


def test_a_member_that_decodes_unhashable_makes_the_set_a_handle(session: Any) -> None:
    class HashableDict(dict[str, int]):
        def __hash__(self) -> int:  # type: ignore[override]  # dict's is None
            return 1

    wire = session.encode({HashableDict(a=1)})
    assert "$handle" in wire


def test_user_code_raising_in_a_conversion_gives_a_handle(session: Any) -> None:
    class Broken(datetime.tzinfo):
        def utcoffset(self, dt: datetime.datetime | None) -> datetime.timedelta:
            raise RuntimeError("no offset today")

        def dst(self, dt: datetime.datetime | None) -> None:
            return None

        def tzname(self, dt: datetime.datetime | None) -> None:
            return None

    import numbers

    class BadInt:
        def __int__(self) -> int:
            raise ValueError("no")

    numbers.Integral.register(BadInt)
    wire = session.encode([datetime.datetime(2024, 1, 1, tzinfo=Broken()), BadInt()])
    assert [next(iter(item)) for item in wire] == ["$handle", "$handle"]


def test_decoded_values_are_the_types_of_the_table(session: Any) -> None:
    values = session.decode(
        [
            {"$decimal": "1.10"},
            {"$datetime": "2024-05-17T12:30:00.000005+05:30"},
            {"$timedelta": [-1, 86399, 999999]},
            {"$complex": [{"$float": "-inf"}, 0]},
            {"$set": [{"$tuple": [1, {"$bytes": "AA=="}]}]},
        ]
    )
    assert values[0] == decimal.Decimal("1.10")
    assert str(values[0]) == "1.10"
    assert values[1].utcoffset() == datetime.timedelta(hours=5, minutes=30)
    assert values[2] == datetime.timedelta(microseconds=-1)
    assert values[3] == complex(float("-inf"), 0)
    assert values[4] == {(1, b"\x00")}
    assert decode_value(session.encode(values)) == values


def test_numpy_timedelta64_keeps_its_unit_as_a_handle(session: Any) -> None:
    # numpy's timedelta64 derives from its signed integer, an Integral to the ABC.
    import numbers

    timedelta64 = type("timedelta64", (), {"__module__": "numpy", "__int__": int})
    numbers.Integral.register(timedelta64)
    wire = session.encode(timedelta64())
    assert wire["$handle"]["type"] == "numpy.timedelta64"
