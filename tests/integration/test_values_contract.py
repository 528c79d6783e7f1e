"""The value table (docs/protocol/pipe.md, section 8) through the SDK on every transport.

Each test runs six times, ``{pipe, http, grpc} x {sync, async}``, against the real
backends of the transport contract suite (tests/integration/test_transport_contract.py):
every row, from the session to the app and from the app to the session.
"""

import datetime
import math
import uuid
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any

import pytest

from tests.integration.contract.threaded import unwrap

pytestmark = pytest.mark.anyio


PLUS_TWO = datetime.timezone(datetime.timedelta(hours=2))

# (expression in the session, the Python value the app gets): one per row of the table
# that has a tag or a conversion; the JSON rows are in test_transport_contract.py.
ROWS: list[tuple[str, Any]] = [
    ("{3, 1, 'a'}", {1, 3, "a"}),
    ("set()", set()),
    (
        "frozenset({(1, 'x'), frozenset({b'y'})})",
        frozenset({(1, "x"), frozenset({b"y"})}),
    ),
    ("{2**5000, float('inf')}", {2**5000, math.inf}),
    ("1 - 2.5j", 1 - 2.5j),
    ("complex(float('inf'), -0.0)", complex(math.inf, -0.0)),
    ("__import__('decimal').Decimal('1.10')", Decimal("1.10")),
    ("__import__('decimal').Decimal('-Infinity')", Decimal("-Infinity")),
    (
        "__import__('datetime').datetime(2024, 5, 17, 12, 30, 0, 5)",
        datetime.datetime(2024, 5, 17, 12, 30, 0, 5),
    ),
    (
        "__import__('datetime').datetime(2024, 5, 17, 12, 30, tzinfo="
        "__import__('datetime').timezone(__import__('datetime').timedelta(hours=2)))",
        datetime.datetime(2024, 5, 17, 12, 30, tzinfo=PLUS_TWO),
    ),
    ("__import__('datetime').date(2024, 5, 17)", datetime.date(2024, 5, 17)),
    ("__import__('datetime').time(8, 0, 1, 250)", datetime.time(8, 0, 1, 250)),
    (
        "__import__('datetime').time(8, tzinfo=__import__('datetime').timezone.utc)",
        datetime.time(8, tzinfo=datetime.UTC),
    ),
    (
        "__import__('datetime').timedelta(days=-1, seconds=5, microseconds=7)",
        datetime.timedelta(days=-1, seconds=5, microseconds=7),
    ),
    ("__import__('uuid').UUID(int=2**128 - 1)", uuid.UUID(int=2**128 - 1)),
    ("__import__('pathlib').Path('/data/a b.csv')", PurePosixPath("/data/a b.csv")),
    ("__import__('pathlib').PurePosixPath('rel/x')", PurePosixPath("rel/x")),
    ("{'s': {1}, 't': (1j,)}", {"s": {1}, "t": (1j,)}),
]


@pytest.mark.parametrize(("expression", "expected"), ROWS, ids=[r[0] for r in ROWS])
async def test_each_row_comes_back_as_its_python_type(
    client: Any, expression: str, expected: Any
) -> None:
    value = await client.evaluate(expression)
    assert type(value) is type(expected)
    assert value == expected
    if isinstance(expected, datetime.datetime | datetime.time):
        assert value.utcoffset() == expected.utcoffset()
    if isinstance(expected, complex):
        assert repr(value) == repr(expected)  # -0.0 and inf parts


@pytest.mark.parametrize(("expression", "expected"), ROWS, ids=[r[0] for r in ROWS])
async def test_each_row_is_accepted_in_arguments(
    client: Any, expression: str, expected: Any
) -> None:
    # The session gets the value itself: equal to what it would have built, same type
    # (a path is a concrete Path there: it names a file of the server's).
    kind = (
        "type(__import__('pathlib').Path())"
        if isinstance(expected, PurePosixPath)
        else f"type({expression})"
    )
    same = await client.evaluate(
        f"(v == {expression}, type(v) is {kind})", locals={"v": expected}
    )
    assert same == (True, True)
    assert await client.evaluate("v", locals={"v": expected}) == expected


async def test_a_path_argument_is_a_concrete_path_in_the_session(client: Any) -> None:
    result = await client.evaluate(
        "(type(p).__name__, p.is_absolute())", locals={"p": PurePosixPath("/tmp")}
    )
    assert result == ("PosixPath", True)


async def test_numbers_of_other_libraries_are_python_numbers(client: Any) -> None:
    # What numpy does, without numpy: types registered with the numbers ABCs, and a
    # bool from the "numpy" module (numpy.bool_ is no number to the ABCs).
    await client.execute(
        "import numbers\n"
        "class Int64:\n"
        "    def __int__(self): return 41\n"
        "    def __index__(self): return 41\n"
        "class Float32:\n"
        "    def __float__(self): return 0.5\n"
        "class Complex64:\n"
        "    def __complex__(self): return 1 + 1j\n"
        "numbers.Integral.register(Int64)\n"
        "numbers.Real.register(Float32)\n"
        "numbers.Complex.register(Complex64)\n"
        "Bool = type('bool_', (), {'__module__': 'numpy', '__bool__': lambda s: True})\n"
        "class Huge:\n"
        "    def __int__(self): return 10**5000\n"
        "numbers.Integral.register(Huge)\n"
        "class NanReal:\n"
        "    def __float__(self): return float('nan')\n"
        "numbers.Real.register(NanReal)\n"
    )
    values = await client.evaluate(
        "[Int64(), Float32(), Complex64(), Bool(), Huge(), NanReal()]"
    )
    assert values[:5] == [41, 0.5, 1 + 1j, True, 10**5000]
    assert [type(v) for v in values] == [int, float, complex, bool, int, float]
    assert math.isnan(values[5])
    assert await client.evaluate("Int64()") + 1 == 42
    assert await client.evaluate("{Int64(), Int64()}") == {41}


async def test_what_has_no_lossless_form_stays_a_handle_with_its_text(
    client: Any,
) -> None:
    async with client.session() as session:
        await session.execute(
            "import datetime, decimal, fractions\n"
            "class Hashable:\n"
            "    def __repr__(self): return 'Hashable()'\n"
            "class MyDecimal(decimal.Decimal): pass\n"
            "class NoOffset(datetime.tzinfo):\n"
            "    def utcoffset(self, dt): return None\n"
        )
        cases = {
            "fractions.Fraction(1, 3)": ("fractions.Fraction", "Fraction(1, 3)"),
            "{1, Hashable()}": ("set", None),
            "MyDecimal('1')": ("__main__.MyDecimal", "Decimal('1')"),
            "datetime.datetime(2024, 1, 1, tzinfo=NoOffset())": (
                "datetime.datetime",
                None,
            ),
        }
        kept = []  # a collected proxy's handle is released by the next request
        for expression, (type_name, text) in cases.items():
            remote = await session.evaluate(expression)
            kept.append(remote)
            assert remote.handle.type == type_name, expression
            assert remote.repr == remote.handle.repr
            if text is not None:
                assert remote.repr == text
        # The set became one handle; its Hashable member none of its own.
        assert len(await session.objects()) == len(cases)
        members = await session.evaluate("{1, Hashable()}")
        assert sorted(members.repr.strip("{}").split(", ")) == ["1", "Hashable()"]


async def test_a_proxy_shows_its_text_without_a_round_trip(client: Any) -> None:
    async with client.session() as session:
        await session.execute(
            "class Broken:\n"
            "    def __repr__(self): raise RuntimeError('no')\n"
            "class Long:\n"
            "    def __repr__(self): return 'x' * 1000\n"
        )
        broken = await session.evaluate("Broken()")
        long = await session.evaluate("Long()")
        counter = await session.create("collections.OrderedDict")
        await session.aclose()  # the session is gone: only local state is read now
        assert broken.repr == "<__main__.Broken object (repr failed)>"
        assert long.repr == "x" * 237 + "..."
        assert str(unwrap(long)) == long.repr
        assert counter.repr == "OrderedDict()"
