"""What user code raises or returns never ends the worker, over every transport (issue 11).

The transport contract's six combinations ({pipe, http, grpc} x {sync, async}) against
real backend processes: hostile exceptions and values, integers of any size, a
``KeyboardInterrupt`` the code raises itself, handles of a failed request. After each,
the same session still has its state.
"""

from typing import Any

import pytest

import beephost_client as bc
from tests.integration.contract.servers import MAX_HANDLES

pytestmark = pytest.mark.anyio


HOSTILE = [
    "class E(Exception):\n    def __str__(self): raise RuntimeError\nraise E()",
    "class E(Exception):\n    def __str__(self): raise SystemExit(3)\nraise E()",
    "class A:\n    def __repr__(self): raise SystemExit(1)\nraise ValueError(A())",
    "class E(Exception):\n    @property\n    def __class__(self): raise RuntimeError\n"
    "raise E()",
    "a = ValueError('a')\nb = TypeError('b')\na.__cause__ = b\nb.__cause__ = a\nraise a",
    "raise SystemExit(5)",
    "raise GeneratorExit",
    "class V:\n    @property\n    def __class__(self): raise RuntimeError\nV()",
    "class D(dict):\n    def items(self): raise RuntimeError\nD(a=1)",
]


async def test_hostile_code_keeps_the_session(client: Any) -> None:
    async with client.session() as session:
        await session.execute("kept = 'state kept'")
        pid = (await session.info()).pid
        for code in HOSTILE:
            with pytest.raises(bc.ExecutionFailed) as caught:
                await session.execute(code)
            assert isinstance(caught.value.data["traceback"], str)
            assert await session.evaluate("kept") == "state kept", code
        assert (await session.info()).pid == pid


async def test_a_hostile_repr_still_returns_a_handle(client: Any) -> None:
    async with client.session() as session:
        obj = await session.evaluate(
            "type('V', (), {'__repr__': lambda self: 1 / 0})()"
        )
        assert "repr failed" in obj.handle.repr


async def test_integers_of_any_size_are_exact(client: Any) -> None:
    huge = 10**5000
    assert await client.evaluate("10**5000") == huge
    assert await client.evaluate("-v - 1", locals={"v": huge}) == -huge - 1
    assert await client.evaluate("[v, (v,)]", locals={"v": huge * 7}) == [
        huge * 7,
        (huge * 7,),
    ]
    assert await client.evaluate("v == 10**5000 * 3", locals={"v": huge * 3}) is True


async def test_a_keyboard_interrupt_raised_by_the_code_is_execution_failed(
    client: Any,
) -> None:
    with pytest.raises(bc.ExecutionFailed) as caught:
        await client.execute("raise KeyboardInterrupt('mine')")
    assert caught.value.remote_type == "KeyboardInterrupt"


async def test_a_failed_request_leaves_no_handles(client: Any) -> None:
    async with client.session() as session:
        with pytest.raises(bc.QuotaExceeded):
            await session.evaluate(f"[object() for _ in range({MAX_HANDLES + 1})]")
        assert await session.objects() == []
        assert (
            len(await session.evaluate(f"[object() for _ in range({MAX_HANDLES})]"))
            == MAX_HANDLES
        )


async def test_a_syntax_error_shows_no_server_frames(client: Any) -> None:
    with pytest.raises(bc.ExecutionFailed) as caught:
        await client.execute("x = (1,\ny = 2 +")
    traceback = caught.value.data["traceback"]
    assert "ast.py" not in traceback
    assert "Traceback" not in traceback
