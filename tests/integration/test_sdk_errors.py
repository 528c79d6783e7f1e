"""Every error the SDK raises derives from BeepHostError: bad arguments, misuse and
unreadable replies too, on every transport, sync and async (real backends, as in the
transport contract), each chained to what it replaced."""

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest
from pydantic import ValidationError

import beephost_client as bc
from tests.integration.contract.servers import Backend

pytestmark = pytest.mark.anyio


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def _self_containing() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def _check(
    caught: pytest.ExceptionInfo[BaseException],
    kind: type[bc.BeepHostError],
    cause: type[BaseException] | None = None,
) -> None:
    error = caught.value
    assert isinstance(error, bc.BeepHostError)
    assert isinstance(error, kind), repr(error)
    if cause is not None:
        assert isinstance(error.__cause__, cause), repr(error.__cause__)


@pytest.mark.parametrize(
    ("value", "cause"),
    [
        (_nested(250), ValidationError),
        (object(), TypeError),
        (Fraction(1, 3), TypeError),  # no lossless form: only a handle
        (_self_containing(), RecursionError),
    ],
    ids=["250-deep", "object", "fraction", "self-containing"],
)
async def test_a_value_that_cannot_travel_is_invalid_argument(
    client: Any, mode: str, value: Any, cause: type[BaseException]
) -> None:
    if mode == "sync" and cause is RecursionError:
        # The thread adapter would recurse into the value itself: call directly.
        with pytest.raises(bc.InvalidArgument) as caught:
            client.wrapped.evaluate("x", locals={"x": value})
    else:
        with pytest.raises(bc.InvalidArgument) as caught:
            await client.evaluate("x", locals={"x": value})
    _check(caught, bc.InvalidArgument, cause)
    assert isinstance(caught.value, ValueError)  # what Python code expects, still
    assert await client.evaluate("1 + 1") == 2


async def test_a_remote_object_of_another_session_is_invalid_argument(
    client: Any,
) -> None:
    async with client.session() as first, client.session() as second:
        remote = await first.create("collections.OrderedDict")
        with pytest.raises(bc.InvalidArgument) as caught:
            await second.evaluate("x", locals={"x": remote})
        _check(caught, bc.InvalidArgument)
        assert "cannot cross sessions" in caught.value.message


@pytest.mark.parametrize("seconds", [-1, 0, float("nan"), float("inf"), "soon"])
async def test_a_bad_timeout_is_invalid_argument(client: Any, seconds: Any) -> None:
    with pytest.raises(bc.InvalidArgument) as caught:
        await client.evaluate("1", timeout=seconds)
    _check(caught, bc.InvalidArgument)


async def test_a_session_not_open_is_a_usage_error(client: Any) -> None:
    session = client.session()
    with pytest.raises(bc.UsageError) as caught:
        await session.evaluate("1")
    _check(caught, bc.UsageError)
    assert isinstance(caught.value, RuntimeError)


async def test_a_closed_client_is_a_usage_error(
    connect: Callable[..., Any], backend_urls: dict[str, Backend], transport: str
) -> None:
    backend = backend_urls[transport]
    closed = connect(backend.url, token=backend.token)
    await closed.aclose()
    with pytest.raises(bc.UsageError) as caught:
        await closed.evaluate("1")
    _check(caught, bc.UsageError)


@pytest.mark.parametrize(
    "url", ["ftp://host/x", "unix://", "http://", "grpc://", "no scheme"]
)
def test_a_bad_url_is_invalid_argument(url: str) -> None:
    for make in (bc.connect, bc.aconnect):
        with pytest.raises(bc.InvalidArgument) as caught:
            make(url)
        _check(caught, bc.InvalidArgument)


def test_a_bad_timeout_value_object_is_invalid_argument() -> None:
    with pytest.raises(bc.InvalidArgument):
        bc.Timeout(request=-1)


@pytest.mark.parametrize(
    "reply",
    [
        {"value": {"$bytes": "not base64!"}},
        {"value": {"$tuple": 5}},
        {"value": {"$float": "huge"}},
    ],
    ids=["bad-bytes", "bad-tuple", "bad-float"],
)
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_reply_the_sdk_cannot_read_is_bad_reply(
    reply: dict[str, Any], kind: str
) -> None:
    transport = bc.MockTransport(lambda command: reply)
    if kind == "sync":
        with (
            bc.Client(transport=transport) as sync_client,
            pytest.raises(bc.BadReply) as caught,
        ):
            sync_client.evaluate("x")
    else:
        async with bc.AsyncClient(transport=transport) as async_client:
            with pytest.raises(bc.BadReply) as caught:
                await async_client.evaluate("x")
    _check(caught, bc.BadReply)
    assert isinstance(caught.value, bc.InternalError)
