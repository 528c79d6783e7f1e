"""The shared client logic, through MockTransport: commands, values, errors, retries, GC."""

import gc
import math
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

import beephost_client as bc
from beephost_protocol import Command
from beephost_protocol import models as wire


class Recorder:
    """A handler that records commands and answers from a table of functions."""

    def __init__(self, **answers: Any) -> None:
        self.commands: list[Command] = []
        self.answers = answers

    def __call__(self, command: Command) -> dict[str, Any]:
        self.commands.append(command)
        answer = self.answers.get(command.COMMAND.replace(".", "_"), {})
        result: dict[str, Any] = answer(command) if callable(answer) else answer
        return result

    def of(self, kind: type[Command]) -> list[Any]:
        return [c for c in self.commands if isinstance(c, kind)]


def handle_value(id_: str, type_: str = "collections.Counter") -> dict[str, Any]:
    return {"$handle": {"id": id_, "type": type_, "repr": f"<{id_}>"}}


def client_with(recorder: Recorder, **options: Any) -> bc.Client:
    return bc.Client(transport=bc.MockTransport(recorder), **options)


# -- commands and deadlines -------------------------------------------------------------


def test_evaluate_builds_the_command_with_encoded_locals_and_deadline() -> None:
    recorder = Recorder(eval={"value": {"$tuple": [1, {"$float": "inf"}]}})
    client = client_with(recorder, timeout=bc.Timeout(request=12, grace=3))
    assert client.evaluate("t", locals={"b": b"\x00", "t": (1,)}) == (1, math.inf)
    (command,) = recorder.of(wire.Evaluate)
    assert command.locals == {"b": {"$bytes": "AA=="}, "t": {"$tuple": [1]}}
    assert (command.session, command.timeout) == ("default", 12)


def test_per_call_and_session_timeouts_override_the_default() -> None:
    waits: list[float] = []

    class Transport(bc.MockTransport):
        # MockTransport also answers controller requests: `handle` is overloaded.
        def handle(self, command: Any, *, timeout: float) -> Any:
            waits.append(timeout)
            return super().handle(command, timeout=timeout)

    recorder = Recorder(session_open={"session": "s-1", "ttl": 5.0})
    client = bc.Client(
        transport=Transport(recorder), timeout=bc.Timeout(request=10, grace=2)
    )
    client.evaluate("1", timeout=4)
    with client.session(ttl=5, timeout=7) as session:
        session.evaluate("1")
        session.evaluate("1", timeout=1.5)
    deadlines = [c.timeout for c in recorder.of(wire.Evaluate)]
    assert deadlines == [4, 7, 1.5]
    assert waits[0] == 4 + 2  # the client waits the grace past the deadline
    assert recorder.of(wire.SessionOpen)[0].ttl == 5
    assert recorder.of(wire.SessionClose)[0].session == "s-1"
    with pytest.raises(ValueError, match="timeout"):
        client.evaluate("1", timeout=-1)


def test_timeout_value_object_is_finite() -> None:
    with pytest.raises(ValueError, match="finite"):
        bc.Timeout(request=math.inf)
    with pytest.raises(ValueError, match="finite"):
        bc.Timeout(connect=0)
    assert (
        bc.Client(transport=bc.MockTransport(Recorder()), timeout=3).timeout.request
        == 3
    )


def test_execute_and_streams_decode_results() -> None:
    result = {
        "stdout": "hi\n",
        "stderr": "",
        "value": {"$bytes": "AQ=="},
        "has_value": True,
    }
    recorder = Recorder(exec=result)
    client = client_with(recorder)
    assert client.execute("x").value == b"\x01"
    chunks: list[bc.OutputChunk | bc.Output] = []
    streamed = client.execute("x", on_output=chunks.append)
    assert chunks == [bc.OutputChunk("stdout", "hi\n")]
    assert (streamed.stdout, streamed.value) == ("", b"\x01")
    with client.stream("x") as stream:
        assert list(stream) == [bc.OutputChunk("stdout", "hi\n")]
    assert stream.result.has_value is True
    assert [c.stream for c in recorder.of(wire.Execute)] == [False, True, True]


def test_stream_result_before_the_end_is_an_error() -> None:
    client = client_with(Recorder(exec={"stdout": "", "stderr": ""}))
    stream = client.stream("x")
    with pytest.raises(RuntimeError, match="end"):
        _ = stream.result
    stream.close()
    assert list(stream) == []  # closed before it started: nothing is sent


# -- values and proxies -------------------------------------------------------------------


def test_handles_become_proxies_and_go_back_as_handles() -> None:
    recorder = Recorder(
        object_create={"value": handle_value("h1")},
        eval=lambda c: {
            "value": [handle_value("h2", "object"), {"k": handle_value("h3")}]
        },
        object_call={"value": 3},
    )
    client = client_with(recorder)
    counter = client.create("collections.Counter", "abc", start=1)
    assert isinstance(counter, bc.RemoteObject)
    assert (counter.handle.id, counter.handle.type, counter.session_id) == (
        "h1",
        "collections.Counter",
        "default",
    )
    (create,) = recorder.of(wire.ObjectCreate)
    assert (create.target, create.args, create.kwargs) == (
        "collections.Counter",
        ["abc"],
        {"start": 1},
    )
    nested = client.evaluate("x", locals={"c": counter, "pair": (counter, 1)})
    assert isinstance(nested[0], bc.RemoteObject)
    assert isinstance(nested[1]["k"], bc.RemoteObject)
    sent = recorder.of(wire.Evaluate)[0].locals
    assert sent["c"] == {"$handle": {"id": "h1", "type": "", "repr": ""}}
    assert sent["pair"] == {
        "$tuple": [{"$handle": {"id": "h1", "type": "", "repr": ""}}, 1]
    }
    assert counter.call("total") == 3
    assert counter(1) == 3
    calls = recorder.of(wire.ObjectCall)
    assert [(c.handle, c.method, c.args) for c in calls] == [
        ("h1", "total", []),
        ("h1", None, [1]),
    ]


def test_sync_attribute_sugar_reads_and_assigns() -> None:
    recorder = Recorder(
        object_create={"value": handle_value("h1")},
        object_get_attr=lambda c: (
            {"value": handle_value("m1", "method")}
            if c.name == "most_common"
            else {"value": "letters"}
        ),
        object_call={"value": [{"$tuple": ["a", 5]}]},
    )
    client = client_with(recorder)
    counter = client.create("collections.Counter")
    assert counter.label == "letters"
    counter.label = "x"
    assert counter.most_common(1) == [("a", 5)]  # get the bound method, then call it
    (set_attr,) = recorder.of(wire.ObjectSetAttr)
    assert (set_attr.handle, set_attr.name, set_attr.value) == ("h1", "label", "x")
    assert [c.name for c in recorder.of(wire.ObjectGetAttr)] == ["label", "most_common"]
    assert recorder.of(wire.ObjectCall)[0].handle == "m1"
    with pytest.raises(AttributeError):
        _ = counter._private  # private names never go to the server


def test_proxies_cannot_cross_sessions() -> None:
    recorder = Recorder(
        session_open={"session": "s-1", "ttl": 1.0},
        object_create={"value": handle_value("h1")},
    )
    client = client_with(recorder)
    with client.session() as session:
        proxy = session.create("object")
        with pytest.raises(ValueError, match="cross sessions"):
            client.evaluate("p", locals={"p": proxy})
    assert proxy.released  # the session took its handles with it
    assert recorder.of(wire.ObjectRelease) == []


def test_release_is_explicit_idempotent_and_on_context_exit() -> None:
    ids = iter(["h1", "h2"])
    recorder = Recorder(
        object_create=lambda c: {"value": handle_value(next(ids))},
        object_release={"released": 1},
    )
    client = client_with(recorder)
    with client.create("a") as first:
        pass
    assert first.released
    second = client.create("b")
    second.release()
    second.release()
    assert [c.handles for c in recorder.of(wire.ObjectRelease)] == [["h1"], ["h2"]]
    with pytest.raises(bc.NotFound, match="released"):
        second.get("x")


def test_garbage_collected_proxies_are_released_in_one_batch_by_the_next_call() -> None:
    counter = iter(range(100))
    recorder = Recorder(
        object_create=lambda c: {"value": handle_value(f"h{next(counter)}")},
        session_open={"session": "s-1", "ttl": 1.0},
        object_list={"handles": []},
    )
    client = client_with(recorder)
    session = client.open_session()
    dropped = [client.create("x") for _ in range(3)] + [session.create("y")]
    kept = session.create("z")
    del dropped
    gc.collect()
    assert recorder.of(wire.ObjectRelease) == []  # nothing is sent from a finalizer
    assert client.objects() == []
    releases = recorder.of(wire.ObjectRelease)
    assert sorted((r.session, tuple(sorted(r.handles))) for r in releases) == [
        ("default", ("h0", "h1", "h2")),
        ("s-1", ("h3",)),
    ]
    assert recorder.commands[-1].COMMAND == "object.list"  # the releases went first
    assert not kept.released


def test_close_releases_live_proxies_and_closes_the_transport() -> None:
    recorder = Recorder(object_create={"value": handle_value("h1")})
    transport = bc.MockTransport(recorder)
    with bc.Client(transport=transport) as client:
        proxy = client.create("x")
    assert proxy.released
    assert recorder.of(wire.ObjectRelease)[0].handles == ["h1"]
    assert transport.closed
    with pytest.raises(RuntimeError, match="closed"):
        client.evaluate("1")


# -- errors and retries -------------------------------------------------------------------


def failing(*errors: BaseException, then: dict[str, Any] | None = None) -> Recorder:
    queue = list(errors)

    def answer(command: Command) -> dict[str, Any]:
        if queue:
            raise queue.pop(0)
        if isinstance(command, wire.ObjectList):
            return {"handles": []}
        return then or {}

    return Recorder(
        eval=answer,
        session_info=answer,
        object_list=answer,
        session_list=answer,
        exec=answer,
    )


def test_errors_pass_through_as_the_protocols_classes() -> None:
    error = bc.ExecutionFailed(
        "ZeroDivisionError: division by zero", {"type": "ZeroDivisionError"}
    )
    client = client_with(failing(error))
    with pytest.raises(bc.ExecutionFailed) as caught:
        client.evaluate("1/0")
    assert caught.value.remote_type == "ZeroDivisionError"


def test_a_request_that_was_not_sent_is_retried_once_whatever_it_is() -> None:
    recorder = failing(bc.ConnectError("refused"), then={"value": 1})
    assert client_with(recorder).evaluate("1") == 1
    assert len(recorder.of(wire.Evaluate)) == 2
    recorder = failing(bc.ConnectError("refused"), bc.ConnectError("refused"))
    with pytest.raises(bc.ConnectError):
        client_with(recorder).evaluate("1")
    assert len(recorder.of(wire.Evaluate)) == 2  # once, not forever


@pytest.mark.parametrize(
    ("call", "kind", "retried"),
    [
        (lambda c: c.evaluate("1"), wire.Evaluate, False),
        (lambda c: c.execute("x = 1"), wire.Execute, False),
        (lambda c: c.info(), wire.SessionInfo, True),
        (lambda c: c.objects(), wire.ObjectList, True),
        (lambda c: c.sessions(), wire.SessionList, True),
    ],
    ids=["eval", "exec", "info", "objects", "sessions"],
)
def test_a_lost_connection_is_retried_only_for_idempotent_commands(
    call: Any, kind: type[Command], retried: bool
) -> None:
    answer = {
        "session": "default",
        "environment": "e",
        "python_version": "3.11.7",
        "implementation": "CPython",
        "executable": "/p",
        "pid": 1,
        "packages": {},
        "handles": 0,
        "requests": 1,
        "created_at": 0.0,
        "idle_seconds": 0.0,
        "ttl": None,
        "handles_list": [],
        "sessions": ["default"],
        "stdout": "",
        "stderr": "",
    }
    recorder = failing(bc.ConnectionLost("reset"), then=answer)
    client = client_with(recorder)
    if retried:
        call(client)
    else:
        with pytest.raises(bc.ConnectionLost):
            call(client)
    assert len(recorder.of(kind)) == (2 if retried else 1)


def test_server_errors_are_never_retried() -> None:
    recorder = failing(bc.Unavailable("draining"))
    with pytest.raises(bc.Unavailable):
        client_with(recorder).sessions()
    assert len(recorder.of(wire.SessionList)) == 1


def test_session_close_treats_lost_and_expired_as_closed() -> None:
    def close(command: Command) -> dict[str, Any]:
        raise bc.SessionLost("gone")

    recorder = Recorder(
        session_open={"session": "s-1", "ttl": 1.0}, session_close=close
    )
    with client_with(recorder).session() as session:
        pass
    assert session.closed
    assert session.id == "s-1"


def test_session_info_is_typed() -> None:
    raw = {
        "session": "default",
        "environment": "env",
        "python_version": "3.11.7",
        "implementation": "CPython",
        "executable": "/usr/bin/python3",
        "pid": 42,
        "packages": {"numpy": "2.1.3"},
        "handles": 0,
        "requests": 3,
        "created_at": 1.0,
        "idle_seconds": 0.5,
        "ttl": 0,  # gRPC's "none"
        "from_a_newer_server": True,
    }
    info = client_with(Recorder(session_info=raw)).info()
    assert (info.pid, info.packages, info.ttl) == (42, {"numpy": "2.1.3"}, None)


_MALFORMED: dict[str, tuple[dict[str, Any], Callable[[bc.Client], Any]]] = {
    "exec": ({"exec": {"stdout": 1, "stderr": ""}}, lambda c: c.execute("x")),
    "exec-output": (
        {"exec": {"stdout": "", "stderr": "", "outputs": [{"data": {}}]}},
        lambda c: c.execute("x"),
    ),
    "session.info": ({"session_info": {"session": "default"}}, lambda c: c.info()),
    "object.list": ({"object_list": {"handles": [{"id": 1}]}}, lambda c: c.objects()),
    "object.release": ({"object_release": {}}, lambda c: c.release("h1")),
    "interrupt": ({"interrupt": {"interrupted": "maybe"}}, lambda c: c.interrupt()),
    "session.list": ({"session_list": {"sessions": "default"}}, lambda c: c.sessions()),
    "session.open": ({"session_open": {"ttl": 1.0}}, lambda c: c.open_session()),
}


@pytest.mark.parametrize("case", list(_MALFORMED))
def test_a_reply_not_in_its_result_model_is_bad_reply(case: str) -> None:
    answers, call = _MALFORMED[case]
    with pytest.raises(bc.BadReply, match="reply is not a") as caught:
        call(client_with(Recorder(**answers)))
    assert isinstance(caught.value.__cause__, ValidationError)


def test_an_argument_the_command_model_refuses_names_where_it_failed() -> None:
    value: Any = 0
    for _ in range(250):
        value = [value]
    with pytest.raises(bc.InvalidArgument) as caught:
        client_with(Recorder()).evaluate("x", locals={"x": value})
    assert caught.value.message == (
        "invalid argument: locals: Value error, a value nested deeper than 200 levels"
    )
    assert isinstance(caught.value.__cause__, ValidationError)


def test_client_needs_a_url_or_a_transport() -> None:
    with pytest.raises(ValueError, match="URL or a transport"):
        bc.Client()
    with pytest.raises(ValueError, match="unsupported URL"):
        bc.connect("ftp://example.org")


# -- the async twin -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_client_mirrors_the_sync_one() -> None:
    ids = iter(["h1", "h2", "h3"])

    async def answer(command: Command) -> dict[str, Any]:
        if isinstance(command, wire.ObjectCreate):
            return {"value": handle_value(next(ids))}
        if isinstance(command, wire.ObjectGetAttr):
            return {"value": "letters"}
        if isinstance(command, wire.ObjectCall):
            return {"value": [command.method, command.args]}
        if isinstance(command, wire.Execute):
            return {"stdout": "a", "stderr": "b", "value": 1, "has_value": True}
        if isinstance(command, wire.SessionOpen):
            return {"session": "s-9", "ttl": 3.0}
        if isinstance(command, wire.SessionList):
            return {"sessions": ["default", "s-9"]}
        if isinstance(command, wire.ObjectRelease):
            return {"released": len(command.handles)}
        if isinstance(command, wire.SessionClose):
            return {"closed": True}
        return {"value": 2}

    recorder = Recorder()
    recorder.answers = {}

    async def recording(command: Command) -> dict[str, Any]:
        recorder.commands.append(command)
        return await answer(command)

    async with bc.AsyncClient(transport=bc.MockTransport(recording)) as client:
        assert await client.evaluate("1 + 1") == 2
        counter = await client.create("collections.Counter")
        assert await counter.label == "letters"  # lazy attribute, awaited: get_attr
        assert await counter.most_common(2) == ["most_common", [2]]  # one call
        with pytest.raises(TypeError, match=r"await proxy\.set"):
            counter.label = "x"
        chunks: list[bc.OutputChunk | bc.Output] = []
        async with client.stream("x") as stream:
            chunks.extend([chunk async for chunk in stream])
        assert [getattr(c, "stream", None) for c in chunks] == ["stdout", "stderr"]
        assert stream.result.value == 1
        async with client.session() as session:
            assert session.id == "s-9"
            async with await session.create("x") as scoped:
                assert scoped.session_id == "s-9"
        del counter
        gc.collect()
        assert await client.sessions() == ["default", "s-9"]
    releases = [c for c in recorder.commands if isinstance(c, wire.ObjectRelease)]
    assert [(r.session, r.handles) for r in releases] == [
        ("s-9", ["h2"]),
        ("default", ["h1"]),
    ]
