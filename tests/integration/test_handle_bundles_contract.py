"""A returned handle carries its rich bundle: ``proxy.bundle``, without a round trip.

Each test runs six times, ``{pipe, http, grpc} x {sync, async}``, against the real
backends of the transport contract suite (tests/integration/test_transport_contract.py).
"""

from typing import Any

import pytest

from tests.integration.test_rich_outputs_contract import TABLE, TABLE_HTML

pytestmark = pytest.mark.anyio


# Fake rich objects, as a pandas DataFrame would be: a handle with an HTML form.
FAKES = f"""{TABLE}
class Frame(Table):
    def __repr__(self):
        return "Frame(1)"
    def head(self):
        return Frame()

class BrokenHtml:
    def _repr_html_(self):
        raise RuntimeError("a broken representation is skipped")
    def __repr__(self):
        return "BrokenHtml()"

class Huge:
    def _repr_html_(self):
        return "h" * (5 << 20)  # over the default 4 MiB per output
    def __repr__(self):
        return "Huge()"
"""


async def test_a_returned_handle_carries_its_bundle(client: Any) -> None:
    async with client.session() as session:
        await session.execute(FAKES)
        frame = await session.evaluate("Frame()")
        head = await frame.head()
        attr = await session.evaluate("type('Box', (), {'f': Frame()})()")
        created = await session.create("Frame")
        executed = (await session.execute("Frame()")).value
        await session.aclose()  # the session is gone: only local state is read now
        for proxy in (frame, head, created, executed):
            bundle = proxy.bundle
            assert bundle is not None
            assert (bundle.output_type, bundle.html, bundle.markdown) == (
                "execute_result",
                TABLE_HTML,
                "| 1 |",
            )
            assert bundle.text == proxy.repr == "Frame(1)"
            assert bundle.metadata == {}
        assert attr.bundle is None  # no representation beyond text/plain


async def test_get_attr_returns_the_bundle_too(client: Any) -> None:
    async with client.session() as session:
        await session.execute(FAKES + "class Box:\n    f = Frame()\n")
        box = await session.evaluate("Box()")
        assert (await box.f).bundle.html == TABLE_HTML


async def test_a_raising_representation_is_skipped(client: Any) -> None:
    async with client.session() as session:
        await session.execute(FAKES)
        broken = await session.evaluate("BrokenHtml()")
        assert broken.bundle is None
        assert broken.repr == "BrokenHtml()"
        assert await session.evaluate("1 + 1") == 2  # the session still serves


async def test_only_the_top_level_value_carries_a_bundle(client: Any) -> None:
    async with client.session() as session:
        await session.execute(FAKES)
        nested = await session.evaluate("[Frame(), {'k': Frame()}]")
        assert nested[0].repr == nested[1]["k"].repr == "Frame(1)"
        assert nested[0].bundle is None
        assert nested[1]["k"].bundle is None


async def test_a_part_over_the_display_limit_is_named(client: Any) -> None:
    async with client.session() as session:
        await session.execute(FAKES)
        huge = await session.evaluate("Huge()")
        assert huge.bundle.data == {"text/plain": "Huge()"}
        assert huge.bundle.metadata == {"dropped": {"text/html": 5 << 20}}
