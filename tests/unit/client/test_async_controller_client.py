"""AsyncControllerClient without I/O: the twin of ControllerClient, over MockTransport."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import beephost_client as bc
from beephost_client.controller import (
    AsyncControllerClient,
    ControllerClient,
    Limits,
    LogLine,
    Request,
    Response,
)
from tests.unit.client.test_controller_client import (
    BACKEND,
    ENV,
    JOB,
    Recorder,
    error,
    ndjson,
    reply,
)

pytestmark = pytest.mark.anyio

RUNTIME = {"python": "3.13", "version": "3.13.5", "initialised": True}
DONE = {**JOB, "status": "succeeded", "finished_at": 3.0}

# (method, args, kwargs, replies): every public call, on both clients.
CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any], list[Response]]] = [
    ("health", (), {}, [reply(200, {"status": "ok"})]),
    ("ready", (), {}, [reply(200, {"status": "ready"})]),
    ("metrics", (), {}, [reply(200, content=b"beephost_up 1\n")]),
    ("config", (), {}, [reply(200, {"default_python": "3.13"})]),
    ("runtimes", (), {}, [reply(200, [RUNTIME])]),
    ("init_runtime", ("3.13",), {}, [reply(202, JOB)]),
    ("environments", (), {}, [reply(200, [ENV])]),
    ("environment", ("data",), {}, [reply(200, ENV)]),
    ("create_environment", ("data",), {"requirements": ["six"]}, [reply(201, ENV)]),
    ("ensure_environment", ("a b",), {"network": True}, [reply(200, ENV)]),
    ("delete_environment", ("data",), {}, [reply(204)]),
    ("admin_environment", (), {}, [reply(200, ENV)]),
    ("jobs", (), {}, [reply(200, [JOB])]),
    ("job", ("job-1",), {}, [reply(200, JOB)]),
    (
        "job_log",
        ("job-1",),
        {"after": 2},
        [reply(200, {"job": JOB, "lines": [{"seq": 3, "line": "a"}], "next": 3})],
    ),
    (
        "wait_job",
        ("job-1",),
        {},
        [reply(200, content=ndjson({"seq": 1, "line": "a"}, {"job": DONE}))],
    ),
    (
        "start_backend",
        ("data", "http"),
        {"limits": Limits(memory_mb=512)},
        [reply(202, BACKEND)],
    ),
    ("backends", (), {}, [reply(200, [BACKEND])]),
    ("backend", ("b-1",), {}, [reply(200, BACKEND)]),
    ("stop_backend", ("b-1",), {}, [reply(204)]),
    ("backend_logs", ("b-1",), {"tail": 2}, [reply(200, content=b"x\n")]),
    ("backend_connection", ("b-1",), {}, [reply(200, {"url": "http://h:1"})]),
    (
        "wait_backend",
        ("b-1",),
        {},
        [reply(200, BACKEND), reply(200, {**BACKEND, "status": "ready"})],
    ),
]


def twins(
    *responses: Response | Callable[[Request], Response],
) -> tuple[AsyncControllerClient, Recorder]:
    recorder = Recorder(*responses)
    return AsyncControllerClient(transport=bc.MockTransport(recorder)), recorder


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "responses"), CALLS, ids=[c[0] for c in CALLS]
)
async def test_every_call_matches_the_sync_client(
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    responses: list[Response],
) -> None:
    sync_recorder = Recorder(*responses)
    sync = ControllerClient(transport=bc.MockTransport(sync_recorder))
    expected = getattr(sync, method)(*args, **kwargs)
    client, recorder = twins(*responses)
    assert await getattr(client, method)(*args, **kwargs) == expected
    assert recorder.requests == sync_recorder.requests


def test_the_twins_have_the_same_public_methods() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    assert public(AsyncControllerClient) - {"aclose"} == public(ControllerClient) - {
        "close"
    }
    for name in public(AsyncControllerClient):
        assert getattr(AsyncControllerClient, name).__doc__, name


async def test_a_coroutine_handler_and_a_streamed_body() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield ndjson({"seq": 1, "line": "resolving"})
        yield ndjson({"seq": 2, "line": "building"}, {"job": DONE})

    async def handler(request: Request) -> Response:
        return reply(200, content=body())

    client = AsyncControllerClient(transport=bc.MockTransport(handler))
    seen: list[LogLine] = []
    job = await client.wait_job("job-1", on_log=seen.append)
    assert job.succeeded
    assert [line.line for line in seen] == ["resolving", "building"]


async def test_wait_job_follows_a_broken_stream_again() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield ndjson({"seq": 1, "line": "a"})
        raise bc.ConnectionLost("reset")

    client, recorder = twins(
        lambda request: reply(200, content=broken()),
        reply(200, content=ndjson({"seq": 1, "line": "a"}, {"job": DONE})),
    )
    seen: list[str] = []
    job = await client.wait_job("job-1", on_log=lambda line: seen.append(line.line))
    assert job.succeeded
    assert seen == ["a"]
    assert len(recorder.requests) == 2


async def test_errors_map_to_the_taxonomy() -> None:
    client, _ = twins(error(409, "conflict", "environment 'e' exists"))
    with pytest.raises(bc.Conflict):
        await client.create_environment("e")
    client, _ = twins(reply(200, BACKEND))
    with pytest.raises(bc.ExecutionTimeout, match="still starting"):
        await client.wait_backend("b-1", timeout=0)


async def test_connect_backend_gives_an_async_client_and_close_closes() -> None:
    transport = bc.MockTransport(
        Recorder(reply(200, {"url": "http://127.0.0.1:9", "token": "t"}))
    )
    async with AsyncControllerClient(transport=transport) as client:
        assert repr(client) == "<AsyncControllerClient http://127.0.0.1:8600>"
        async with await client.connect_backend("b-1", timeout=3) as backend:
            assert isinstance(backend, bc.AsyncClient)
            assert backend.timeout.request == 3
    assert transport.closed


async def test_the_http_transport_is_the_default_and_checks_urls() -> None:
    client = AsyncControllerClient("unix:///run/ctl/api.sock", token="t")
    assert client.url == "unix:///run/ctl/api.sock"
    await client.aclose()
    with pytest.raises(ValueError, match="not an http"):
        AsyncControllerClient("ftp://ctl/")


def test_a_coroutine_handler_needs_an_asyncio_client() -> None:
    async def handler(request: Request) -> Response:
        return reply(200, [])

    client = ControllerClient(transport=bc.MockTransport(handler))
    with pytest.raises(bc.InvalidArgument, match="asyncio"):
        client.environments()


async def test_an_async_body_is_read_with_the_async_methods() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"a"

    released: list[int] = []
    response = Response(200, content=body(), on_close=lambda: released.append(1))
    with pytest.raises(bc.UsageError, match="aiter_bytes"):
        response.read()
    response = Response(200, content=body(), on_close=lambda: released.append(1))
    assert await response.aread() == b"a"
    await response.aclose()
    assert released == [1, 1]
