"""The gRPC backend as a real grpc.aio server on loopback: every RPC, every error code."""

from __future__ import annotations  # the stubs' async types exist only in .pyi

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from beephost_pb.exec.v1 import exec_pb2 as pb
from beephost_pb.exec.v1 import exec_pb2_grpc
from beephost_protocol import errors, pb_codec
from tests.integration.rpc.support import (
    CALL_TIMEOUT as T,
)
from tests.integration.rpc.support import (
    TOKEN,
    RpcBackend,
    StartBackend,
    bearer,
    rpc_error,
)
from tests.unit.rpc_backend.test_pb_codec import BAD_FIELDS

pytestmark = pytest.mark.anyio

if TYPE_CHECKING:
    Stub = exec_pb2_grpc.ExecutorAsyncStub


def value(reply: Any) -> Any:
    return json.loads(reply.value_json)


async def open_session(stub: Stub) -> str:
    reply = await stub.OpenSession(pb.OpenSessionRequest(), timeout=T)
    return reply.session


async def execute_error(
    stub: Stub, code: str, *, session: str = "", deadline: float = T
) -> tuple[grpc.StatusCode, errors.BeepHostError | None]:
    """Run ``code`` with Execute, which must fail (``deadline``: the call's, in seconds):
    its status and beephost-error."""
    request = pb.ExecuteRequest(session=session, code=code)
    return await rpc_error(stub.Execute(request, timeout=deadline))


# -- every RPC ------------------------------------------------------------------------------


async def test_evaluate_and_execute_keep_state_and_values_lossless(stub: Stub) -> None:
    executed = await stub.Execute(
        pb.ExecuteRequest(code="x = 'ü' * 3\nprint(x)\nx.upper()"), timeout=T
    )
    assert (executed.stdout, executed.stderr, executed.has_value) == ("üüü\n", "", True)
    assert value(executed) == "ÜÜÜ"
    reply = await stub.Evaluate(
        pb.EvaluateRequest(expression="x + y", locals_json='{"y": "!"}'), timeout=T
    )
    assert value(reply) == "üüü!"
    reply = await stub.Evaluate(
        pb.EvaluateRequest(
            expression="[2**100, float('nan'), float('-inf'), (1,), b'\\x00', {1: 2}]"
        ),
        timeout=T,
    )
    assert value(reply) == [
        2**100,
        {"$float": "nan"},
        {"$float": "-inf"},
        {"$tuple": [1]},
        {"$bytes": "AA=="},
        {"$map": [[1, 2]]},
    ]
    tagged = {"t": {"$tuple": [1, 2]}, "big": -(2**90), "f": {"$float": "inf"}}
    reply = await stub.Evaluate(
        pb.EvaluateRequest(
            expression="[type(t).__name__, big - 1, f > 10**400]",
            locals_json=json.dumps(tagged),
        ),
        timeout=T,
    )
    assert value(reply) == ["tuple", -(2**90) - 1, True]
    executed = await stub.Execute(pb.ExecuteRequest(code="y = 1"), timeout=T)
    assert (executed.has_value, executed.value_json) == (False, "null")


async def test_sessions(stub: Stub) -> None:
    opened = await stub.OpenSession(pb.OpenSessionRequest(ttl=120), timeout=T)
    assert opened.session.startswith("s-")
    assert opened.ttl == 120
    listed = await stub.ListSessions(pb.ListSessionsRequest(), timeout=T)
    assert list(listed.sessions) == ["default", opened.session]
    await stub.Execute(
        pb.ExecuteRequest(session=opened.session, code="a = 5"), timeout=T
    )
    info = await stub.GetSessionInfo(pb.SessionRef(session=opened.session), timeout=T)
    assert (info.session, info.environment, info.implementation) == (
        opened.session,
        "test-env",
        "CPython",
    )
    assert (info.requests, info.ttl, info.handles) == (2, 120, 0)  # info counts itself
    assert info.pid > 0
    assert info.python_version.count(".") == 2
    default = await stub.GetSessionInfo(pb.SessionRef(), timeout=T)
    assert (default.session, default.ttl) == ("default", 0)
    interrupted = await stub.Interrupt(pb.SessionRef(session=opened.session), timeout=T)
    assert interrupted.interrupted is False  # nothing runs
    closed = await stub.CloseSession(pb.SessionRef(session=opened.session), timeout=T)
    assert closed.closed is True
    listed = await stub.ListSessions(pb.ListSessionsRequest(), timeout=T)
    assert list(listed.sessions) == ["default"]


async def test_objects(stub: Stub) -> None:
    created = await stub.CreateObject(
        pb.CreateObjectRequest(
            target="collections.deque",
            args_json="[[1, 2]]",
            kwargs_json='{"maxlen": 5}',
        ),
        timeout=T,
    )
    handle = value(created)["$handle"]
    assert handle["type"] == "collections.deque"
    got = await stub.GetAttribute(
        pb.GetAttributeRequest(handle=handle["id"], name="maxlen"), timeout=T
    )
    assert value(got) == 5
    called = await stub.CallMethod(
        pb.CallMethodRequest(handle=handle["id"], method="append", args_json="[3]"),
        timeout=T,
    )
    assert value(called) is None
    ns = await stub.CreateObject(
        pb.CreateObjectRequest(target="types.SimpleNamespace"), timeout=T
    )
    ns_id = value(ns)["$handle"]["id"]
    await stub.SetAttribute(
        pb.SetAttributeRequest(handle=ns_id, name="big", value_json=str(2**80)),
        timeout=T,
    )
    got = await stub.GetAttribute(
        pb.GetAttributeRequest(handle=ns_id, name="big"), timeout=T
    )
    assert value(got) == 2**80
    # A handle passed back as a value; an empty method calls the object itself.
    length = await stub.Evaluate(
        pb.EvaluateRequest(
            expression="len(d)",
            locals_json=json.dumps({"d": {"$handle": {"id": handle["id"]}}}),
        ),
        timeout=T,
    )
    assert value(length) == 3
    func = await stub.Evaluate(
        pb.EvaluateRequest(expression="lambda a, b=1: a * b"), timeout=T
    )
    func_id = value(func)["$handle"]["id"]
    product = await stub.CallMethod(
        pb.CallMethodRequest(handle=func_id, args_json="[6]", kwargs_json='{"b": 7}'),
        timeout=T,
    )
    assert value(product) == 42
    listed = await stub.ListObjects(pb.SessionRef(), timeout=T)
    assert [h.id for h in listed.handles] == [handle["id"], ns_id, func_id]
    assert listed.handles[0].type == "collections.deque"
    assert "deque([1, 2, 3]" in listed.handles[0].repr
    released = await stub.ReleaseObjects(
        pb.ReleaseObjectsRequest(handles=[handle["id"], ns_id, "h-unknown"]), timeout=T
    )
    assert released.released == 2
    listed = await stub.ListObjects(pb.SessionRef(), timeout=T)
    assert [h.id for h in listed.handles] == [func_id]


async def test_unicode_and_lone_surrogates(stub: Stub) -> None:
    reply = await stub.Evaluate(
        pb.EvaluateRequest(expression="'a\\udc80b ✓'"), timeout=T
    )
    assert value(reply) == "a\udc80b ✓"  # exact inside JSON
    executed = await stub.Execute(
        pb.ExecuteRequest(code="print('a\\udc80b ✓')"), timeout=T
    )
    assert executed.stdout == "a\ufffdb ✓\n"  # text fields are UTF-8
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Evaluate(pb.EvaluateRequest(expression="int('ü')"), timeout=T)
    assert (
        caught.value.details()
        == "ValueError: invalid literal for int() with base 10: 'ü'"
    )


# -- streaming ------------------------------------------------------------------------------


async def test_stream_delivers_chunks_as_produced_then_the_result(stub: Stub) -> None:
    code = (
        "import sys, time\n"
        "for i in range(3):\n"
        "    print(i, flush=True)\n"
        "    time.sleep(0.3)\n"
        "print('warn', file=sys.stderr, flush=True)\n"
        "'end'"
    )
    started = time.monotonic()
    events: list[tuple[float, pb.ExecuteEvent]] = []
    async for event in stub.ExecuteStream(pb.ExecuteRequest(code=code), timeout=T):
        events.append((time.monotonic() - started, event))
    kinds = [event.WhichOneof("event") for _, event in events]
    assert kinds[-1] == "result"
    assert "result" not in kinds[:-1]
    stdout = "".join(e.stdout for _, e in events if e.WhichOneof("event") == "stdout")
    stderr = "".join(e.stderr for _, e in events if e.WhichOneof("event") == "stderr")
    assert (stdout, stderr) == ("0\n1\n2\n", "warn\n")
    result = events[-1][1].result
    assert value(result) == "end"
    assert (result.stdout, result.stderr) == ("", "")  # streamed, not captured
    # The first chunk arrived while the code still ran (it sleeps 0.9 s after it).
    first_chunk, end = events[0][0], events[-1][0]
    assert end - first_chunk > 0.6


async def test_stream_error_comes_after_the_chunks_as_a_status(stub: Stub) -> None:
    events: list[pb.ExecuteEvent] = []
    call = stub.ExecuteStream(
        pb.ExecuteRequest(code="print('before', flush=True)\n1/0"), timeout=T
    )

    async def read_all() -> None:
        async for event in call:
            events.append(event)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read_all()
    assert "".join(e.stdout for e in events) == "before\n"
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    error = pb_codec.error_from_metadata(caught.value.trailing_metadata())
    assert isinstance(error, errors.ExecutionFailed)
    assert error.remote_type == "ZeroDivisionError"


async def test_cancelled_stream_leaves_the_server_serving(stub: Stub) -> None:
    session = await open_session(stub)
    code = "import time\nfor i in range(600):\n    print(i, flush=True)\n    time.sleep(0.1)\n"
    call = stub.ExecuteStream(pb.ExecuteRequest(session=session, code=code), timeout=T)
    async for _ in call:
        break
    call.cancel()
    # The command is interrupted (docs/protocol/rpc.md, 6): the session answers at once.
    reply = await stub.Evaluate(
        pb.EvaluateRequest(session=session, expression="i < 599"), timeout=T
    )
    assert value(reply) is True


# -- errors: status code plus the beephost-error trailing metadata -------------------------


async def test_execution_failed(stub: Stub) -> None:
    code, error = await execute_error(stub, "print('out')\ndef f():\n    1/0\nf()")
    assert code == grpc.StatusCode.UNKNOWN
    assert isinstance(error, errors.ExecutionFailed)
    assert error.message == "ZeroDivisionError: division by zero"
    assert error.remote_type == "ZeroDivisionError"
    assert "1/0" in error.remote_traceback
    assert error.remote_traceback.endswith("ZeroDivisionError: division by zero\n")
    assert error.data["stdout"] == "out\n"


async def test_huge_traceback_and_output_fit_the_metadata(stub: Stub) -> None:
    code = "print('ü' * 500_000)\ndef f(n):\n    return f(n + 1)\nf(0)"
    status, error = await execute_error(stub, code)
    assert status == grpc.StatusCode.UNKNOWN
    assert isinstance(error, errors.ExecutionFailed)
    assert error.remote_type == "RecursionError"
    assert error.remote_traceback.endswith("maximum recursion depth exceeded\n")
    assert "stdout" in error.data["truncated"]
    assert error.data["stdout"].endswith("ü" * 10 + "\n")


async def test_deadline_interrupts_the_code_and_the_server_keeps_serving(
    stub: Stub,
) -> None:
    await stub.Execute(pb.ExecuteRequest(code="state = 'kept'"), timeout=T)
    started = time.monotonic()
    code, error = await execute_error(stub, "while True: pass", deadline=1.0)
    elapsed = time.monotonic() - started
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    # Client and server deadlines race: usually the client's fires first (no error
    # object); if the server's interrupt answer wins, it says the state was kept.
    if error is not None:
        assert isinstance(error, errors.ExecutionTimeout)
        assert error.data["state_lost"] is False
    assert 0.9 < elapsed < 1.0 + 0.5  # deadline + kill_grace
    # The core interrupted the loop at the deadline: the session and its state survive.
    reply = await stub.Evaluate(pb.EvaluateRequest(expression="state"), timeout=T)
    assert value(reply) == "kept"


async def test_code_that_ignores_the_deadline_interrupt_is_killed(stub: Stub) -> None:
    session = await open_session(stub)
    stubborn = (
        "import time\nwhile True:\n    try:\n        time.sleep(1)\n"
        "    except KeyboardInterrupt:\n        pass"
    )
    code, _ = await execute_error(stub, stubborn, session=session, deadline=0.5)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.sleep(0.8)  # kill_grace is 0.5 s
    code, error = await rpc_error(
        stub.Evaluate(pb.EvaluateRequest(session=session, expression="1"), timeout=T)
    )
    assert code == grpc.StatusCode.ABORTED
    assert isinstance(error, errors.SessionLost)
    assert "ignored the interrupt" in error.message


async def test_server_side_timeout_carries_the_error(
    start_backend: StartBackend,
) -> None:
    # A deadline longer than max_timeout: the server times out first and says so.
    stub = (await start_backend(max_timeout=0.5)).stub()
    code, error = await execute_error(stub, "import time\ntime.sleep(5)")
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert isinstance(error, errors.ExecutionTimeout)
    assert error.data["state_lost"] is False


async def test_interrupted(stub: Stub) -> None:
    session = await open_session(stub)
    running = asyncio.ensure_future(
        stub.Execute(
            pb.ExecuteRequest(session=session, code="import time\ntime.sleep(10)"),
            timeout=T,
        )
    )
    await asyncio.sleep(0.5)
    reply = await stub.Interrupt(pb.SessionRef(session=session), timeout=T)
    assert reply.interrupted is True
    code, error = await rpc_error(running)
    assert code == grpc.StatusCode.CANCELLED
    assert isinstance(error, errors.Interrupted)


async def test_session_lost(stub: Stub) -> None:
    session = await open_session(stub)
    code, error = await execute_error(stub, "import os\nos._exit(3)", session=session)
    assert code == grpc.StatusCode.ABORTED
    assert isinstance(error, errors.SessionLost)
    assert error.data["exit_code"] == 3
    code, error = await rpc_error(
        stub.Evaluate(pb.EvaluateRequest(session=session, expression="1"), timeout=T)
    )
    assert code == grpc.StatusCode.ABORTED
    assert isinstance(error, errors.SessionLost)
    assert error.data["session"] == session


async def test_internal(stub: Stub) -> None:
    # The one real path to `internal`: user code corrupts the worker's channel to the
    # core (its descriptor is the worker's argv[1]); the core kills the worker.
    code = "import os, sys\nos.write(int(sys.argv[1]), b'not json\\n')\nimport time\ntime.sleep(1)"
    status, error = await execute_error(stub, code)
    assert status == grpc.StatusCode.INTERNAL
    assert isinstance(error, errors.InternalError)
    assert error.message.startswith("the worker sent a malformed frame")
    reply = await stub.Evaluate(pb.EvaluateRequest(expression="'fresh'"), timeout=T)
    assert value(reply) == "fresh"


@pytest.mark.parametrize(("method", "field", "request_message"), BAD_FIELDS)
async def test_invalid_request(
    stub: Stub, method: str, field: str, request_message: Any
) -> None:
    code, error = await rpc_error(getattr(stub, method)(request_message, timeout=T))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(error, errors.InvalidRequest)
    assert error.data == {"field": field}


async def test_invalid_request_from_the_models(stub: Stub) -> None:
    code, error = await rpc_error(
        stub.CreateObject(
            pb.CreateObjectRequest(target="list", args_json='{"a": 1}'), timeout=T
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(error, errors.InvalidRequest)
    assert error.data["errors"][0]["loc"] == ["args"]


async def test_syntax_errors_are_the_users(stub: Stub) -> None:
    code, error = await rpc_error(
        stub.Evaluate(pb.EvaluateRequest(expression="1 +"), timeout=T)
    )
    assert code == grpc.StatusCode.UNKNOWN
    assert isinstance(error, errors.ExecutionFailed)
    assert error.remote_type == "SyntaxError"


async def test_not_found(stub: Stub) -> None:
    code, error = await rpc_error(
        stub.Evaluate(pb.EvaluateRequest(session="s-nope", expression="1"), timeout=T)
    )
    assert code == grpc.StatusCode.NOT_FOUND
    assert isinstance(error, errors.NotFound)
    assert error.data == {"session": "s-nope"}
    code, error = await rpc_error(
        stub.GetAttribute(pb.GetAttributeRequest(handle="h-nope", name="x"), timeout=T)
    )
    assert code == grpc.StatusCode.NOT_FOUND
    assert isinstance(error, errors.NotFound)


async def test_too_large_request_is_refused_by_grpc(
    start_backend: StartBackend,
) -> None:
    stub = (await start_backend(max_request_bytes=64 * 1024)).stub()
    code, error = await execute_error(stub, "#" * 100_000)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error is None  # gRPC refuses it before any handler: no beephost-error
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Execute(pb.ExecuteRequest(code="#" * 100_000), timeout=T)
    assert caught.value.details() == (
        "SERVER: Received message larger than max (100004 vs. 65536)"
    )
    reply = await stub.Evaluate(
        pb.EvaluateRequest(expression="'still' + ' serving'"), timeout=T
    )
    assert value(reply) == "still serving"


async def test_too_large_result(start_backend: StartBackend) -> None:
    stub = (await start_backend(max_result_bytes=64 * 1024)).stub()
    code, error = await rpc_error(
        stub.Evaluate(pb.EvaluateRequest(expression="'x' * 100_000"), timeout=T)
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert isinstance(error, errors.TooLarge)
    assert error.data["limit"] == 64 * 1024


async def test_large_values_pass_within_the_limits(backend: RpcBackend) -> None:
    # 6 MiB each way: over gRPC's 4 MiB default, within the server's limits.
    stub = backend.stub(**{"grpc.max_receive_message_length": 32 << 20})
    data = "x" * (6 << 20)
    reply = await stub.Evaluate(
        pb.EvaluateRequest(expression="len(s), s", locals_json=json.dumps({"s": data})),
        timeout=T,
    )
    assert value(reply) == {"$tuple": [len(data), data]}


async def test_quota_exceeded(start_backend: StartBackend) -> None:
    stub = (await start_backend(max_sessions=2, max_handles=2)).stub()
    await open_session(stub)
    code, error = await rpc_error(stub.OpenSession(pb.OpenSessionRequest(), timeout=T))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert isinstance(error, errors.QuotaExceeded)
    assert error.data == {"limit": 2}
    for _ in range(2):
        await stub.CreateObject(pb.CreateObjectRequest(target="object"), timeout=T)
    code, error = await rpc_error(
        stub.CreateObject(pb.CreateObjectRequest(target="object"), timeout=T)
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert isinstance(error, errors.QuotaExceeded)


# -- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        bearer("wrong"),
        bearer(TOKEN[:-1]),  # near misses: one character short, long, off
        bearer(TOKEN + "x"),
        bearer(TOKEN[:-1] + "N"),
        bearer(TOKEN.upper()),
        bearer(""),
        (("authorization", TOKEN),),  # no scheme
        (("authorization", f"Basic {TOKEN}"),),
        (("authorization", f"Bearer  {TOKEN}"),),
        (("authorization", f"Bearer {TOKEN} "),),
        bearer(TOKEN) + bearer("wrong"),
        (("x-token", TOKEN),),
    ],
    ids=lambda m: repr(m)[:60],
)
async def test_unauthorized(start_backend: StartBackend, metadata: Any) -> None:
    backend = await start_backend(token=TOKEN)
    stub = backend.stub()
    code, error = await rpc_error(
        stub.Evaluate(pb.EvaluateRequest(expression="1"), metadata=metadata, timeout=T)
    )
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert isinstance(error, errors.Unauthorized)
    call = stub.ExecuteStream(pb.ExecuteRequest(code="1"), metadata=metadata, timeout=T)
    code, error = await rpc_error(call.read())
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert isinstance(error, errors.Unauthorized)


async def test_the_right_token_passes(start_backend: StartBackend) -> None:
    backend = await start_backend(token=TOKEN)
    stub = backend.stub()
    for metadata in (bearer(TOKEN), (("authorization", f"bearer {TOKEN}"),)):
        reply = await stub.Evaluate(
            pb.EvaluateRequest(expression="6 * 7"), metadata=metadata, timeout=T
        )
        assert value(reply) == 42
    events = [
        e
        async for e in stub.ExecuteStream(
            pb.ExecuteRequest(code="print(1)"), metadata=bearer(TOKEN), timeout=T
        )
    ]
    assert events[0].stdout == "1\n"
    rejected = backend.executor.metrics.registry.get_sample_value(
        "beephost_grpc_rejected_requests_total", {"code": "unauthorized"}
    )
    assert rejected is None  # nothing refused yet
    await rpc_error(stub.ListSessions(pb.ListSessionsRequest(), timeout=T))
    assert (
        backend.executor.metrics.registry.get_sample_value(
            "beephost_grpc_rejected_requests_total", {"code": "unauthorized"}
        )
        == 1
    )


# -- lifecycle: unavailable while starting and draining ---------------------------------------


async def test_unavailable_until_the_executor_is_ready(
    start_backend: StartBackend,
) -> None:
    backend = await start_backend(ready=False)
    stub = backend.stub()
    code, error = await rpc_error(
        stub.Evaluate(pb.EvaluateRequest(expression="1"), timeout=T)
    )
    assert code == grpc.StatusCode.UNAVAILABLE
    assert isinstance(error, errors.Unavailable)
    assert "starting" in error.message
    await backend.start_executor()
    reply = await stub.Evaluate(pb.EvaluateRequest(expression="1"), timeout=T)
    assert value(reply) == 1


async def test_drain_finishes_short_calls_and_releases_long_ones(
    start_backend: StartBackend,
) -> None:
    backend = await start_backend()
    stub = backend.stub()
    long_session = await open_session(stub)
    short = asyncio.ensure_future(
        stub.Execute(
            pb.ExecuteRequest(code="import time\ntime.sleep(0.5)\n'short'"), timeout=T
        )
    )
    long = asyncio.ensure_future(
        stub.Execute(
            pb.ExecuteRequest(session=long_session, code="import time\ntime.sleep(10)"),
            timeout=T,
        )
    )
    await asyncio.sleep(0.2)
    started = time.monotonic()
    shutdown = asyncio.ensure_future(backend.server.shutdown(1.0))
    await asyncio.sleep(0.1)
    code, error = await rpc_error(
        stub.Evaluate(pb.EvaluateRequest(expression="1"), timeout=T)
    )
    assert code == grpc.StatusCode.UNAVAILABLE
    assert isinstance(error, errors.Unavailable)
    assert "shutting down" in error.message
    assert value(await short) == "short"
    code, error = await rpc_error(long)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert isinstance(error, errors.Unavailable)
    assert "outcome is unknown" in error.message
    await asyncio.wait_for(shutdown, T)
    assert 1.0 <= time.monotonic() - started < 3.0


async def test_a_drain_that_runs_out_answers_code_ignoring_the_interrupt(
    start_backend: StartBackend,
) -> None:
    """The released call's code ignores SIGINT: its worker is killed after the kill
    grace (0.5 s here) and the call is still answered ``unavailable``, not with the
    kill's ``session_lost``; the server goes on to stop."""
    backend = await start_backend()
    stub = backend.stub()
    stubborn = asyncio.ensure_future(
        stub.Execute(
            pb.ExecuteRequest(
                code="import signal, time\n"
                "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                "time.sleep(30)"
            ),
            timeout=T,
        )
    )
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await asyncio.wait_for(backend.server.shutdown(0.5), T)
    elapsed = time.monotonic() - started
    code, error = await rpc_error(stubborn)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert isinstance(error, errors.Unavailable)
    assert "outcome is unknown" in error.message
    assert 0.5 + 0.5 <= elapsed < 0.5 + 0.5 + 2.0  # drain, kill grace, then the stop


async def test_port_in_use_is_refused(start_backend: StartBackend) -> None:
    backend = await start_backend()
    with pytest.raises(RuntimeError):
        await start_backend(port=backend.port)


# -- concurrency ----------------------------------------------------------------------------


async def test_concurrent_clients_mixed_calls(backend: RpcBackend) -> None:
    async def client(index: int) -> None:
        stub = backend.stub()
        session = await open_session(stub)
        for i in range(100):
            match i % 5:
                case 0:
                    reply = await stub.Evaluate(
                        pb.EvaluateRequest(
                            session=session, expression=f"{index} * {i}"
                        ),
                        timeout=T,
                    )
                    assert value(reply) == index * i
                case 1:
                    done = await stub.Execute(
                        pb.ExecuteRequest(session=session, code=f"n = {i}\nprint(n)"),
                        timeout=T,
                    )
                    assert done.stdout == f"{i}\n"
                case 2:
                    created = await stub.CreateObject(
                        pb.CreateObjectRequest(
                            session=session,
                            target="collections.Counter",
                            args_json='["aab"]',
                        ),
                        timeout=T,
                    )
                    handle = value(created)["$handle"]["id"]
                    counted = await stub.CallMethod(
                        pb.CallMethodRequest(
                            session=session,
                            handle=handle,
                            method="most_common",
                            args_json="[1]",
                        ),
                        timeout=T,
                    )
                    assert value(counted) == [{"$tuple": ["a", 2]}]
                    await stub.ReleaseObjects(
                        pb.ReleaseObjectsRequest(session=session, handles=[handle]),
                        timeout=T,
                    )
                case 3:
                    reply = await stub.Evaluate(
                        pb.EvaluateRequest(expression="1 + 1"), timeout=T
                    )
                    assert value(reply) == 2
                case _:
                    info = await stub.GetSessionInfo(
                        pb.SessionRef(session=session), timeout=T
                    )
                    assert info.session == session
        await stub.CloseSession(pb.SessionRef(session=session), timeout=T)

    await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(8))), 120)
    ok = backend.executor.metrics.registry.get_sample_value(
        "beephost_requests_total",
        {"transport": "grpc", "command": "eval", "outcome": "ok"},
    )
    assert ok == 8 * 40


async def test_bytes_that_are_no_request_are_invalid_request_without_a_token(
    backend: RpcBackend,
) -> None:
    # The tolerant deserializers are in the handler table, not in an interceptor: a
    # server without a token has none (the token case: tests/reliability/test_bad_input).
    evaluate = backend.channel().unary_unary(
        "/beephost.exec.v1.Executor/Evaluate", None, None
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await evaluate(b"\x0a\x05ab", timeout=T)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = pb_codec.error_from_metadata(caught.value.trailing_metadata())
    assert error is not None
    assert error.wire_code == "invalid_request"
