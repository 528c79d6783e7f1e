"""The transport contract (STYLE R17): the same tests through the SDK over every transport.

Each test runs six times, ``{pipe, http, grpc} x {sync, async}`` (ids ``pipe-sync``,
``grpc-async``, ...), against real backend processes. The test code is written once, as
async code: the async client is used as is, the sync one behind a thread adapter
(``contract/threaded.py``), so the sync client really runs in threads. A transport is
done when it passes this module unchanged.

Reusing these tests against other servers (e.g. containers in tests/e2e)::

    from tests.integration.test_transport_contract import *  # noqa: F403

    pytestmark = [pytest.mark.anyio, pytest.mark.e2e]       # after the import

    @pytest.fixture(scope="session")
    def backend_urls() -> dict[str, Backend]:       # {"pipe"|"http"|"grpc": Backend(url, token)}
        ...
    # likewise secured_backend_urls (servers with a token) and restartable_backend
    # (an object with .backend and .restart()); or deselect the tests that use them.

The servers run with the limits in ``contract/servers.py`` (KILL_GRACE, MAX_HANDLES,
MAX_RESULT_BYTES, MAX_REQUEST_BYTES); servers reused from elsewhere need the same.
"""

import gc
import math
import time
from typing import Any

import anyio
import pytest

import beephost_client as bc
from tests.integration.contract import fixtures
from tests.integration.contract.servers import (
    KILL_GRACE,
    MAX_HANDLES,
    MAX_REQUEST_BYTES,
    MAX_RESULT_BYTES,
    TOKEN,
    Backend,
)

pytestmark = pytest.mark.anyio

# The fixtures, bound here by name so that pytest finds them in this module (and a
# module that star-imports this one gets them too, to override some).
server_set = fixtures.server_set
backend_urls = fixtures.backend_urls
secured_backend_urls = fixtures.secured_backend_urls
restartable_backend = fixtures.restartable_backend
unavailable_url = fixtures.unavailable_url
combo = fixtures.combo
transport = fixtures.transport
mode = fixtures.mode
connect = fixtures.connect
client = fixtures.client

__all__ = [
    "Backend",
    "backend_urls",
    "client",
    "combo",
    "connect",
    "mode",
    "pytestmark",
    "restartable_backend",
    "secured_backend_urls",
    "server_set",
    "transport",
    "unavailable_url",
]


# -- evaluate and execute -------------------------------------------------------------------


async def test_evaluate_and_execute(client: Any) -> None:
    assert await client.evaluate("1 + 1") == 2
    assert await client.evaluate("x * y", locals={"x": 6, "y": 7}) == 42
    result = await client.execute(
        "import sys\nprint('out')\nsys.stderr.write('err\\n')\ntotal = 40 + 2\ntotal"
    )
    assert (result.stdout, result.stderr) == ("out\n", "err\n")
    assert (result.value, result.has_value) == (42, True)
    assert await client.evaluate("total") == 42  # names bound by exec stay
    statement = await client.execute("unused = 1")
    assert (statement.value, statement.has_value) == (None, False)


LOSSLESS: list[Any] = [
    2**200,
    -(2**100),
    0,
    1.5,
    -0.0,
    math.inf,
    -math.inf,
    "Grüße, 世界, 🐍",
    "\x00 and a lone surrogate \ud800",
    b"",
    bytes(range(256)),
    (),
    (1, (2, (3,))),
    [1, [2, [3, [4]]]],
    {"a": {"b": [1, 2, {"c": None}]}},
    {1: "one", (0, 0): "origin", None: True},
    {"$ref": "looks like a tag"},
    [True, False, None],
]


async def test_values_are_lossless(client: Any) -> None:
    for value in LOSSLESS:
        back = await client.evaluate("v", locals={"v": value})
        assert back == value
        assert type(back) is type(value)
        assert repr(back) == repr(value)  # -0.0, tuples vs lists, key order
    nan = await client.evaluate("float('nan')")
    assert isinstance(nan, float)
    assert math.isnan(nan)
    assert await client.evaluate("v != v", locals={"v": math.nan}) is True
    assert await client.evaluate(
        "[type(t).__name__ for t in v]", locals={"v": [(), b"", {}]}
    ) == [
        "tuple",
        "bytes",
        "dict",
    ]


async def test_multi_megabyte_payloads(client: Any) -> None:
    text = "ü€𝄞" * (1 << 20)  # 9 MiB of UTF-8 in, its length out
    assert await client.evaluate("len(v)", locals={"v": text}) == len(text)
    blob = bytes(range(256)) * (8 << 10)  # 2 MiB of bytes, base64 both ways
    assert await client.evaluate("v", locals={"v": blob}) == blob
    big = await client.evaluate("'y' * (6 << 20)")
    assert big == "y" * (6 << 20)
    result = await client.execute("print('z' * (512 << 10))")
    assert result.stdout == "z" * (512 << 10) + "\n"


# -- errors: one class per code, on every transport -----------------------------------------


async def test_execution_failed_keeps_remote_type_message_and_traceback(
    client: Any,
) -> None:
    with pytest.raises(bc.ExecutionFailed) as caught:
        await client.execute(
            "print('before')\ndef f():\n    raise KeyError('missing')\nf()"
        )
    error = caught.value
    assert error.remote_type == "KeyError"
    assert "missing" in error.message
    assert "raise KeyError('missing')" in error.remote_traceback
    assert "in f" in error.remote_traceback
    assert error.data["stdout"] == "before\n"
    assert error.__cause__ is not None  # what the transport saw
    assert await client.evaluate("1") == 1  # the session is fine


async def test_timeout_within_deadline_and_next_call_works(client: Any) -> None:
    deadline = 0.5
    started = time.monotonic()
    with pytest.raises(bc.ExecutionTimeout) as caught:
        await client.execute("import time\ntime.sleep(30)", timeout=deadline)
    assert time.monotonic() - started < deadline + KILL_GRACE + 3.0
    assert caught.value.__cause__ is not None
    assert await client.evaluate("'next'") == "next"


async def test_code_that_ignores_the_interrupt_is_killed_and_the_server_says_so(
    client: Any,
) -> None:
    # The server's own answer (state_lost) must arrive, not a client-side deadline:
    # the client waits its grace past the deadline for it.
    async with client.session() as session:
        await session.execute("kept = 'state'")
        with pytest.raises(bc.ExecutionTimeout) as caught:
            await session.execute(
                "import time\n"
                "while True:\n"
                "    try:\n"
                "        time.sleep(30)\n"
                "    except KeyboardInterrupt:\n"
                "        pass",
                timeout=0.5,
            )
        assert caught.value.data.get("state_lost") is True, caught.value.data
        assert "client_side" not in caught.value.data
        with pytest.raises(bc.SessionLost):
            await session.evaluate("kept")


async def test_interrupt_from_another_client(
    connect: Any, backend_urls: dict[str, Backend], transport: str
) -> None:
    backend = backend_urls[transport]
    runner = connect(backend.url, token=backend.token)
    other = connect(backend.url, token=backend.token)
    async with runner.session() as session:
        outcome: dict[str, Any] = {}

        async def run() -> None:
            with pytest.raises(bc.Interrupted) as caught:
                await session.execute(
                    "import time\nprint('started', flush=True)\ntime.sleep(30)"
                )
            outcome["error"] = caught.value

        async with anyio.create_task_group() as group:
            group.start_soon(run)
            remote = other.session(session_id=session.id)
            with anyio.fail_after(15):
                # Polls until the server has the request (before, there is nothing to
                # interrupt), then exactly one interrupt is delivered: it must land,
                # before or during the code, never be lost (no re-sends).
                while not await remote.interrupt():  # noqa: ASYNC110 - polls the server
                    await anyio.sleep(0.01)
        assert isinstance(outcome["error"], bc.Interrupted)
        assert await session.evaluate("'state kept'") == "state kept"


async def test_session_lost(client: Any) -> None:
    async with client.session() as session:
        await session.execute("x = 1")
        with pytest.raises(bc.SessionLost):
            await session.execute("import os\nos._exit(3)")
        with pytest.raises(bc.SessionLost):
            await session.evaluate("x")
    assert session.closed  # a lost session counts as closed


async def test_invalid_request(client: Any) -> None:
    with pytest.raises(bc.InvalidRequest) as caught:
        await client.create("not a dotted name!")
    assert caught.value.__cause__ is not None


async def test_not_found(client: Any) -> None:
    with pytest.raises(bc.NotFound):
        await client.create("no_such_module_beephost.thing")
    gone = client.session(session_id="s-0000000000000000")
    with pytest.raises(bc.NotFound) as caught:
        await gone.evaluate("1")
    assert caught.value.__cause__ is not None


async def test_too_large(client: Any) -> None:
    with pytest.raises(bc.TooLarge):  # a reply over the server's result limit
        await client.evaluate(f"'x' * {MAX_RESULT_BYTES + 1024}")
    with pytest.raises(bc.TooLarge):  # a request over the server's request limit
        await client.evaluate("len(v)", locals={"v": "x" * (MAX_REQUEST_BYTES + 1024)})
    assert await client.evaluate("'still fine'") == "still fine"


async def test_quota_exceeded(client: Any) -> None:
    async with client.session() as session:
        with pytest.raises(bc.QuotaExceeded):
            await session.evaluate(f"[object() for _ in range({MAX_HANDLES + 1})]")


@pytest.mark.parametrize(
    "token",
    [None, "wrong", TOKEN[:-1], TOKEN + "x", TOKEN.upper()],
    ids=["missing", "wrong", "prefix", "longer", "case"],
)
async def test_unauthorized(
    connect: Any,
    secured_backend_urls: dict[str, Backend],
    transport: str,
    token: str | None,
) -> None:
    backend = secured_backend_urls[transport]
    with pytest.raises(bc.Unauthorized) as caught:
        await connect(backend.url, token=token).evaluate("1")
    assert caught.value.__cause__ is not None
    assert await connect(backend.url, token=backend.token).evaluate("1") == 1


async def test_unavailable_when_the_server_is_down(
    connect: Any, unavailable_url: str
) -> None:
    started = time.monotonic()
    with pytest.raises(bc.Unavailable) as caught:
        await connect(unavailable_url).evaluate("1")
    assert time.monotonic() - started < 10
    assert caught.value.__cause__ is not None


# -- streaming ------------------------------------------------------------------------------

SLOW_OUTPUT = (
    "import sys, time\n"
    "print('first', flush=True)\n"
    "time.sleep(1.0)\n"
    "sys.stderr.write('second\\n')\n"
    "'done'"
)


async def test_stream_iterator_yields_chunks_before_completion(client: Any) -> None:
    arrivals: list[tuple[float, bc.OutputChunk]] = []
    async with client.stream(SLOW_OUTPUT) as chunks:
        async for chunk in chunks:
            arrivals.append((time.monotonic(), chunk))
    finished = time.monotonic()
    assert "".join(c.data for _, c in arrivals if c.stream == "stdout") == "first\n"
    assert "".join(c.data for _, c in arrivals if c.stream == "stderr") == "second\n"
    assert finished - arrivals[0][0] > 0.5  # the first chunk came a second early
    assert chunks.result.value == "done"
    assert (chunks.result.stdout, chunks.result.stderr) == ("", "")


async def test_stream_callback(client: Any) -> None:
    arrivals: list[tuple[float, bc.OutputChunk]] = []
    result = await client.execute(
        SLOW_OUTPUT, on_output=lambda chunk: arrivals.append((time.monotonic(), chunk))
    )
    finished = time.monotonic()
    assert arrivals[0][1].stream == "stdout"
    assert finished - arrivals[0][0] > 0.5
    assert result.value == "done"


async def test_stream_error_and_early_exit(client: Any) -> None:
    chunks = client.stream("print('x', flush=True)\n1 / 0")
    seen = []
    with pytest.raises(bc.ExecutionFailed):  # noqa: PT012 - the error ends the iteration
        async for chunk in chunks:
            seen.append(chunk)
    await chunks.aclose()
    assert "".join(c.data for c in seen) == "x\n"
    async with (
        client.session() as session,
        session.stream(
            "import time\nfor i in range(50):\n    print(i, flush=True)\n    time.sleep(0.05)"
        ) as chunks,
    ):
        async for chunk in chunks:
            assert chunk.data.startswith("0")
            break  # abandoned: its connection is dropped, the client stays usable
    assert await client.evaluate("'usable'") == "usable"


# -- sessions -------------------------------------------------------------------------------


async def test_sessions_are_context_managers(client: Any) -> None:
    async with client.session(ttl=60) as session:
        assert session.id in await client.sessions()
        await session.execute("mine = 'session state'")
        assert await session.evaluate("mine") == "session state"
        info = await session.info()
        assert (info.session, info.environment, info.ttl) == (
            session.id,
            "contract",
            60.0,
        )
        assert info.pid > 0
        assert info.python_version.count(".") == 2
        with pytest.raises(bc.ExecutionFailed):
            await client.evaluate("mine")  # not in the default session
    assert session.closed
    assert session.id not in await client.sessions()
    with pytest.raises(RuntimeError, match="closed"):
        await session.evaluate("1")
    default = await client.info()
    assert default.session == "default"
    assert default.ttl is None


# -- remote objects -------------------------------------------------------------------------


async def test_proxies_attributes_methods_and_arguments(client: Any) -> None:
    async with client.session() as session:
        counter = await session.create("collections.Counter", "abracadabra")
        assert counter.handle.type == "collections.Counter"
        assert await counter.call("most_common", 2) == [("a", 5), ("b", 2)]
        assert await counter.most_common(1) == [("a", 5)]  # method sugar
        await counter.set("label", "letters")
        assert await counter.get("label") == "letters"
        assert await counter.label == "letters"  # attribute sugar
        other = await session.create("collections.Counter", a=2, z=1)
        await counter.call("update", other)  # a proxy passed back as an argument
        assert await counter.call("__getitem__", "z") == 1
        assert (
            await session.evaluate("c['a'] + o['a']", locals={"c": counter, "o": other})
            == 9
        )
        nested = await session.evaluate("[object(), {'k': object()}]")
        assert nested[0].handle.type == "object"
        with pytest.raises(bc.ExecutionFailed) as caught:
            await counter.get("no_such_attribute")
        assert caught.value.remote_type == "AttributeError"
        with pytest.raises(ValueError, match="cross sessions"):
            await client.evaluate("c", locals={"c": counter})


async def test_proxy_release_on_exit_and_on_release(client: Any) -> None:
    async with client.session() as session:
        async with await session.create("collections.OrderedDict") as kept:
            assert [h.id for h in await session.objects()] == [kept.handle.id]
        assert kept.released
        assert await session.objects() == []
        dropped = await session.create("collections.deque")
        await dropped.release()
        await dropped.release()  # idempotent
        assert await session.objects() == []
        with pytest.raises(bc.NotFound):
            await dropped.get("maxlen")


async def test_garbage_collected_proxies_leave_no_handles(client: Any) -> None:
    async with client.session() as session:
        for _ in range(5):
            await session.create("collections.Counter", "gc")
        values = await session.evaluate("[object() for _ in range(10)]")
        assert len(values) == 10
        del values
        gc.collect()
        assert await session.objects() == []  # released in one batch before listing


# -- concurrency and reconnection -----------------------------------------------------------


async def test_concurrent_calls(client: Any) -> None:
    workers, calls = 8, 50
    results: dict[int, list[Any]] = {}

    async def worker(n: int) -> None:
        results[n] = [
            await client.evaluate("n * 1000 + i", locals={"n": n, "i": i})
            for i in range(calls)
        ]

    with anyio.fail_after(120):
        async with anyio.create_task_group() as group:
            for n in range(workers):
                group.start_soon(worker, n)
    assert results == {n: [n * 1000 + i for i in range(calls)] for n in range(workers)}


async def test_reconnect_after_a_backend_restart(
    connect: Any, restartable_backend: Any
) -> None:
    backend = restartable_backend.backend
    client = connect(backend.url, token=backend.token)
    assert await client.evaluate("'before'") == "before"
    await anyio.to_thread.run_sync(restartable_backend.restart)
    assert await client.evaluate("'after'") == "after"  # a fresh connection, no error
    assert await client.sessions() == ["default"]


__all__ += [name for name in dir() if name.startswith("test_")]
