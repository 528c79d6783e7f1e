"""pb_codec: protobuf messages to commands and results and back, and the error metadata."""

import copy
import json
from typing import Any

import pytest

from beephost_pb.exec.v1 import exec_pb2 as pb
from beephost_protocol import models, pb_codec, pb_files
from beephost_protocol.cuts import cut_middle, cut_traceback
from beephost_protocol.errors import (
    ERROR_CLASSES,
    MAX_MESSAGE_BYTES,
    MAX_TRACEBACK_BYTES,
    BeepHostError,
    ErrorCode,
    ExecutionFailed,
    InvalidRequest,
    NotFound,
)
from tests.results import exec_result

# Values in wire form: $-tags at any depth, integers beyond 64 bits, non-ASCII text.
WIRE_VALUE: Any = {
    "$tuple": [
        2**100,
        -(2**70),
        1.5,
        None,
        True,
        {"$float": "nan"},
        {"$bytes": "AP8="},
        {"$map": [[1, "one"], [{"$tuple": [0, 0]}, "origin"]]},
        {"$dict": {"$ref": "x"}},
        {"text": "üñï©ødé ✓ 😀", "nested": [[[]]]},
        {"$handle": {"id": "h1", "type": "datetime.date", "repr": "date(1, 1, 1)"}},
    ]
}

COMMANDS: list[models.Command] = [
    models.Evaluate(expression="x + 1", locals={"x": WIRE_VALUE}, session="s-1"),
    models.Evaluate(expression="1"),
    models.Execute(code="print('hi')\n'ü'", session="s-2"),
    models.Execute(code="print(1)", stream=True),
    models.SessionOpen(ttl=12.5),
    models.SessionOpen(),
    models.SessionClose(session="s-3"),
    models.SessionInfo(session="s-4"),
    models.SessionList(),
    models.Interrupt(session="s-5"),
    models.ObjectCreate(
        target="collections.Counter", args=[WIRE_VALUE], kwargs={"a": 2**80}
    ),
    models.ObjectCreate(target="object"),
    models.ObjectGetAttr(handle="h1", name="real"),
    models.ObjectSetAttr(handle="h1", name="x", value=WIRE_VALUE),
    models.ObjectSetAttr(handle="h1", name="x", value=None),
    models.ObjectCall(handle="h1", method="update", args=[[1]], kwargs={"k": "v"}),
    models.ObjectCall(handle="h1"),
    models.ObjectRelease(handles=["h1", "h2"]),
    models.ObjectList(session="s-6"),
    models.LeaseRenew(lease="l-0123456789abcdef"),
    models.LeaseRelease(lease="l-0123456789abcdef"),
]

# The server side: one decoder per RPC, each (request, timeout).
DECODERS: dict[str, Any] = {
    "Evaluate": pb_codec.evaluate_command,
    "Execute": pb_codec.execute_command,
    "ExecuteStream": pb_codec.execute_stream_command,
    "OpenSession": pb_codec.open_session_command,
    "CloseSession": pb_codec.close_session_command,
    "GetSessionInfo": pb_codec.session_info_command,
    "ListSessions": pb_codec.list_sessions_command,
    "Interrupt": pb_codec.interrupt_command,
    "CreateObject": pb_codec.create_object_command,
    "GetAttribute": pb_codec.get_attribute_command,
    "SetAttribute": pb_codec.set_attribute_command,
    "CallMethod": pb_codec.call_method_command,
    "ReleaseObjects": pb_codec.release_objects_command,
    "ListObjects": pb_codec.list_objects_command,
    "RenewLease": pb_codec.renew_lease_command,
    "ReleaseLease": pb_codec.release_lease_command,
}


def wire(message: Any) -> Any:
    """Serialize and parse again, as the network would."""
    return type(message).FromString(message.SerializeToString())


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.COMMAND)
def test_command_round_trips_through_its_request(command: models.Command) -> None:
    spec, request = pb_codec.encode_command(command)
    assert isinstance(request, spec.request)
    decoded = DECODERS[spec.method](wire(request))
    assert decoded == command


def test_timeout_comes_from_the_deadline_not_the_message() -> None:
    _, request = pb_codec.encode_command(models.Evaluate(expression="1", timeout=9))
    assert isinstance(request, pb.EvaluateRequest)
    assert pb_codec.evaluate_command(request).timeout is None
    assert pb_codec.evaluate_command(request, 2.5).timeout == 2.5


def test_every_spec_matches_the_service_descriptor() -> None:
    service = pb.DESCRIPTOR.services_by_name["Executor"]
    assert pb_codec.SERVICE_NAME == "beephost.exec.v1.Executor"
    assert not set(pb_codec._SPECS) & set(pb_files.SPECS)
    specs = {**pb_codec._SPECS, **pb_files.SPECS}
    assert {*specs, "UploadFile"} == {m.name for m in service.methods}
    for method in service.methods:
        if method.name == "UploadFile":  # the one client stream: no RpcSpec
            assert method.client_streaming
            assert not method.server_streaming
            assert pb_files.UPLOAD_REQUEST.DESCRIPTOR is method.input_type
            assert pb_files.UPLOAD_REPLY.DESCRIPTOR is method.output_type
            assert pb_files.UPLOAD_PATH == "/beephost.exec.v1.Executor/UploadFile"
            continue
        spec = specs[method.name]
        assert spec.request.DESCRIPTOR is method.input_type
        assert spec.reply.DESCRIPTOR is method.output_type
        assert spec.streaming == method.server_streaming
        assert not method.client_streaming
        assert spec.path == f"/beephost.exec.v1.Executor/{method.name}"
    assert set(DECODERS) == set(pb_codec._SPECS)


def test_empty_fields_mean_defaults() -> None:
    command = pb_codec.evaluate_command(pb.EvaluateRequest(expression="1"))
    assert command.session == "default"
    assert command.locals == {}
    call = pb_codec.call_method_command(pb.CallMethodRequest(handle="h"))
    assert (call.method, call.args, call.kwargs) == (None, [], {})
    assert pb_codec.open_session_command(pb.OpenSessionRequest()).ttl is None
    interrupt = pb_codec.interrupt_command(pb.SessionRef())
    assert interrupt.session == "default"


# Each RPC's valid request, for a case of BAD_FIELDS to spoil one field of.
_VALID_REQUESTS: dict[str, Any] = {
    "Evaluate": pb.EvaluateRequest(expression="x"),
    "CreateObject": pb.CreateObjectRequest(target="list"),
    "CallMethod": pb.CallMethodRequest(handle="h"),
    "SetAttribute": pb.SetAttributeRequest(handle="h", name="n", value_json="null"),
    "CloseSession": pb.SessionRef(session="s-1"),
}


def spoiled(rpc: str, **field: str) -> tuple[str, str, Any]:
    """``(rpc, field, request)``: ``rpc``'s valid request with one field's text replaced."""
    ((name, text),) = field.items()
    request = copy.deepcopy(_VALID_REQUESTS[rpc])
    setattr(request, name, text)
    return rpc, name, request


#: Requests refused as invalid_request naming the spoiled field (tests/integration/rpc
#: sends them to a server).
BAD_FIELDS = [
    spoiled("Evaluate", locals_json="{"),
    spoiled("Evaluate", locals_json='{"x": NaN}'),
    spoiled("Evaluate", locals_json='{"x": 1} trailing'),
    # Python refuses to parse integers of more than 4300 digits.
    spoiled("Evaluate", locals_json='{"x": ' + "9" * 5000 + "}"),
    spoiled("CreateObject", args_json="[1,"),
    spoiled("CallMethod", kwargs_json="Infinity"),
    spoiled("CallMethod", kwargs_json="{]"),
    spoiled("SetAttribute", value_json="nul"),
    spoiled("SetAttribute", value_json=""),
    spoiled("CloseSession", session=""),
]


@pytest.mark.parametrize(("rpc", "field", "request_message"), BAD_FIELDS)
def test_bad_fields_are_invalid_requests(
    rpc: str, field: str, request_message: Any
) -> None:
    DECODERS[rpc](_VALID_REQUESTS[rpc])  # the spoiled field is what is refused
    with pytest.raises(InvalidRequest) as caught:
        DECODERS[rpc](request_message)
    assert caught.value.data == {"field": field}
    assert field in caught.value.message


@pytest.mark.parametrize(
    ("request_message", "decode", "loc"),
    [
        (pb.EvaluateRequest(expression="x", locals_json="[1]"), "Evaluate", ["locals"]),
        (pb.CreateObjectRequest(target="t", args_json="{}"), "CreateObject", ["args"]),
        (pb.CreateObjectRequest(target=""), "CreateObject", ["target"]),
        (pb.GetAttributeRequest(handle="h", name=""), "GetAttribute", ["name"]),
        (pb.SessionRef(session="s" * 129), "GetSessionInfo", ["session"]),
        (pb.OpenSessionRequest(ttl=-1), "OpenSession", ["ttl"]),
    ],
)
def test_values_the_models_refuse_are_invalid_requests(
    request_message: Any, decode: str, loc: list[str]
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        DECODERS[decode](request_message)
    errors = caught.value.data["errors"]
    assert errors[0]["loc"] == loc
    assert caught.value.message.startswith(f"bad {decode} request: {loc[0]}")
    json.dumps(caught.value.data)  # plain JSON, ready for the wire


RESULTS: list[tuple[str, Any, dict[str, Any]]] = [
    ("Evaluate", pb_codec.value_reply, {"value": WIRE_VALUE}),
    ("Evaluate", pb_codec.value_reply, {"value": None}),
    (
        "Execute",
        pb_codec.execute_reply,
        exec_result(
            stdout="ü\n",
            stderr="warn\n",
            value=WIRE_VALUE,
            has_value=True,
            stderr_dropped=2**40,
        ),
    ),
    ("Execute", pb_codec.execute_reply, exec_result()),
    ("OpenSession", pb_codec.open_session_reply, {"session": "s-1", "ttl": 600.0}),
    ("CloseSession", pb_codec.session_closed_reply, {"closed": True}),
    (
        "GetSessionInfo",
        pb_codec.session_info_reply,
        {
            "session": "default",
            "environment": "local",
            "python_version": "3.11.2",
            "implementation": "CPython",
            "executable": "/usr/bin/python3",
            "pid": 4242,
            "packages": {"pip": "24.0", "zope.interface": "6.1"},
            "handles": 3,
            "requests": 7,
            "created_at": 1700000000.25,
            "idle_seconds": 0.5,
            "ttl": None,
        },
    ),
    ("ListSessions", pb_codec.session_listing_reply, {"sessions": ["default", "s-1"]}),
    ("Interrupt", pb_codec.interrupt_reply, {"interrupted": False}),
    ("CreateObject", pb_codec.value_reply, {"value": WIRE_VALUE["$tuple"][-1]}),
    ("SetAttribute", pb_codec.set_attribute_reply, {}),
    ("ReleaseObjects", pb_codec.release_reply, {"released": 2}),
    (
        "ListObjects",
        pb_codec.handle_list_reply,
        {"handles": [{"id": "h1", "type": "int", "repr": "1"}]},
    ),
    (
        "RenewLease",
        pb_codec.renew_lease_reply,
        {"lease": "l-0123456789abcdef", "ttl": 60.0, "handles": 2},
    ),
    (
        "ReleaseLease",
        pb_codec.release_lease_reply,
        {"lease": "l-0123456789abcdef", "released": 2},
    ),
]


@pytest.mark.parametrize(
    ("method", "encode", "result"), RESULTS, ids=[r[0] for r in RESULTS]
)
def test_result_round_trips_through_its_reply(
    method: str, encode: Any, result: dict[str, Any]
) -> None:
    reply = wire(encode(result))
    assert pb_codec.decode_reply(pb_codec._SPECS[method], reply) == result


def test_session_info_ttl_of_an_expiring_session() -> None:
    info = dict(RESULTS[6][2], session="s-1", ttl=120.0)
    reply = pb_codec.session_info_reply(info)
    assert reply.ttl == 120.0
    assert pb_codec.decode_reply(pb_codec._SPECS["GetSessionInfo"], reply) == info


def test_decode_reply_checks_the_message_type() -> None:
    with pytest.raises(TypeError):
        pb_codec.decode_reply(pb_codec._SPECS["Evaluate"], pb.ExecuteReply())


def test_values_are_json_text_exactly() -> None:
    reply = pb_codec.value_reply({"value": [2**64 + 1, "ü", {"$float": "-inf"}]})
    assert reply.value_json == '[18446744073709551617,"ü",{"$float":"-inf"}]'


def test_lone_surrogates_survive_in_values_and_are_replaced_in_text() -> None:
    value = ["a\udc80b", "\ud83d", "ok"]
    reply = wire(pb_codec.value_reply({"value": value}))
    assert reply.value_json.isascii()  # escaped: protobuf strings must be UTF-8
    assert pb_codec.decode_reply(pb_codec._SPECS["Evaluate"], reply) == {"value": value}
    event = wire(pb_codec.output_event("stdout", "x\udc80y"))
    assert pb_codec.decode_event(event) == ("stdout", "x\ufffdy")


def test_streamed_events() -> None:
    assert pb_codec.decode_event(wire(pb_codec.output_event("stdout", "1\n"))) == (
        "stdout",
        "1\n",
    )
    assert pb_codec.decode_event(wire(pb_codec.output_event("stderr", ""))) == (
        "stderr",
        "",
    )
    result = RESULTS[2][2]
    assert pb_codec.decode_event(wire(pb_codec.result_event(result))) == result
    spec, _ = pb_codec.encode_command(models.Execute(code="", stream=True))
    assert spec.streaming
    assert pb_codec.decode_reply(spec, pb_codec.execute_reply(result)) == result


def test_nan_in_a_command_value_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="Out of range float"):
        pb_codec.encode_command(
            models.Evaluate(expression="x", locals={"x": float("nan")})
        )


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_round_trips(code: ErrorCode) -> None:
    error = ERROR_CLASSES[code]("the message ü", {"detail": [1, "x"]})
    text = pb_codec.encode_error(error)
    assert text.isascii()
    assert text.isprintable()
    decoded = pb_codec.decode_error(text)
    assert type(decoded) is type(error)
    assert decoded is not None
    assert (decoded.message, decoded.data) == (error.message, error.data)


def test_error_metadata_lookup() -> None:
    text = pb_codec.encode_error(NotFound("no session 'x'", {"session": "x"}))
    metadata = [("other", "1"), (pb_codec.ERROR_METADATA_KEY, text)]
    found = pb_codec.error_from_metadata(metadata)
    assert isinstance(found, NotFound)
    assert found.data == {"session": "x"}
    assert pb_codec.error_from_metadata([("other", "1")]) is None
    assert pb_codec.error_from_metadata(None) is None
    assert isinstance(pb_codec.decode_error(text.encode()), NotFound)


@pytest.mark.parametrize("text", ["", "not json", "[1]", '{"message": "no code"}'])
def test_malformed_error_metadata_is_ignored(text: str) -> None:
    assert pb_codec.decode_error(text) is None


def test_unknown_error_code_becomes_the_base_class() -> None:
    decoded = pb_codec.decode_error(
        '{"code":"from_the_future","message":"m","data":{}}'
    )
    assert type(decoded) is BeepHostError
    assert decoded.data == {"code": "from_the_future"}


def test_long_errors_are_cut_to_fit_metadata_keeping_the_ends() -> None:
    traceback = "".join(f'  File "<cell>", line {i}, in f\n' for i in range(2000))
    traceback += "ZeroDivisionError: division by zero\n"
    error = ExecutionFailed(
        "ZeroDivisionError: division by zero",
        {
            "type": "ZeroDivisionError",
            "module": "builtins",
            "args": ["division by zero"],
            "traceback": traceback,
            "stdout": "é" * 1_000_000 + "last line of output\n",
            "stderr": "",
            "stdout_dropped": 0,
            "stderr_dropped": 0,
        },
    )
    text = pb_codec.encode_error(error)
    assert len(text) <= pb_codec.MAX_ERROR_BYTES
    assert text.isascii()
    decoded = pb_codec.decode_error(text)
    assert isinstance(decoded, ExecutionFailed)
    # The traceback is cut as on every transport (cuts.py); only output is cut more.
    assert decoded.data["truncated"] == ["stdout"]
    assert decoded.data["traceback"] == cut_traceback(traceback, MAX_TRACEBACK_BYTES)
    assert "library frames cut" in decoded.data["traceback"]
    assert decoded.data["traceback"].startswith('  File "<cell>", line 0, in f\n')
    assert decoded.data["traceback"].endswith("ZeroDivisionError: division by zero\n")
    assert decoded.data["stdout"].endswith("last line of output\n")
    assert decoded.data["type"] == "ZeroDivisionError"
    assert decoded.data["args"] == ["division by zero"]
    assert decoded.message == error.message


def test_errors_without_long_strings_fall_back_to_a_bare_object() -> None:
    error = InvalidRequest(
        "bad " * 1000, {"errors": [{"loc": [i]} for i in range(3000)]}
    )
    text = pb_codec.encode_error(error)
    assert len(text) <= pb_codec.MAX_ERROR_BYTES
    decoded = pb_codec.decode_error(text)
    assert isinstance(decoded, InvalidRequest)
    assert decoded.data == {"truncated": ["errors"]}
    assert decoded.message == cut_middle("bad " * 1000, MAX_MESSAGE_BYTES)


@pytest.mark.parametrize("limit", [200, 1000, 5000])
def test_errors_fit_any_limit(limit: int) -> None:
    error = ExecutionFailed("m", {"a": "x" * 10_000, "b": "😀" * 10_000, "c": "y" * 65})
    text = pb_codec.encode_error(error, limit)
    assert len(text) <= limit
    assert pb_codec.decode_error(text) is not None
