"""Protobuf messages of ``beephost.exec.v1`` to commands and results, and back (sans-I/O).

The one place that converts between the generated ``beephost_pb`` messages and the
protocol's command models and result dicts (STYLE R15). The gRPC server uses the
``*_command`` decoders and ``*_reply`` encoders; the client's gRPC transport uses
:func:`encode_command` and :func:`decode_reply`. Both use :func:`encode_error` and
:func:`decode_error` for the error object carried in trailing metadata.

Values (results, arguments, ``locals``) travel as JSON text in the pipe protocol's value
encoding (docs/protocol/pipe.md, "Values"): the ``$``-tagged forms pass through untouched,
integers of any size stay exact, and ``NaN``/``Infinity`` literals are refused (non-finite
floats are ``{"$float": ...}``). Empty ``*_json`` request fields mean "none": ``[]`` for
``args_json``, ``{}`` for ``kwargs_json`` and ``locals_json``.
"""

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import Message
from pydantic import ValidationError

from beephost_pb.exec.v1 import exec_pb2 as pb
from beephost_protocol import models, pb_chunks
from beephost_protocol.errors import (
    BeepHostError,
    InvalidRequest,
    error_from_wire,
    validation_summary,
)
from beephost_protocol.jsoncodec import compact_encoder, whole_decoder

__all__ = [
    "ERROR_METADATA_KEY",
    "MAX_ERROR_BYTES",
    "SERVICE_NAME",
    "CommandT",
    "RpcSpec",
    "call_method_command",
    "close_session_command",
    "create_object_command",
    "decode_error",
    "decode_event",
    "decode_reply",
    "encode_command",
    "encode_error",
    "error_from_metadata",
    "evaluate_command",
    "execute_command",
    "execute_reply",
    "execute_stream_command",
    "get_attribute_command",
    "handle_list_reply",
    "interrupt_command",
    "interrupt_reply",
    "list_objects_command",
    "list_sessions_command",
    "open_session_command",
    "open_session_reply",
    "output_event",
    "release_lease_command",
    "release_lease_reply",
    "release_objects_command",
    "release_reply",
    "renew_lease_command",
    "renew_lease_reply",
    "result_event",
    "session_closed_reply",
    "session_info_command",
    "session_info_reply",
    "session_listing_reply",
    "set_attribute_command",
    "set_attribute_reply",
    "value_reply",
]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Executor"].full_name
"""Fully qualified name of the service, ``beephost.exec.v1.Executor``."""

ERROR_METADATA_KEY = "beephost-error"
# A command's own deadline in seconds (request metadata), when the call's gRPC deadline
# is later: the client waits past it for the server's answer (docs/protocol/rpc.md, 6).
TIMEOUT_METADATA_KEY = "beephost-timeout"
# The client's lease (request metadata): the handles the call creates in "default" are
# released when it expires or is released (docs/protocol/rpc.md, "Leases").
LEASE_METADATA_KEY = "beephost-lease"
"""Trailing-metadata key of the JSON error object ``{code, message, data}``."""

MAX_ERROR_BYTES = 6144
"""Upper bound on the encoded error object. gRPC clients refuse more than 8 KiB of
metadata by default. The message, ``type``, ``module``, ``traceback`` and ``args`` are
already cut to fit, identically on every transport (``cuts.py``); longer other string
fields of ``data`` (output) are shortened to the rest, keeping their ends, and named in
``data["truncated"]``."""

# Cut by every transport alike (BeepHostError.to_wire), never again here.
_SAME_EVERYWHERE = frozenset({"type", "module", "traceback", "args"})

CommandT = TypeVar("CommandT", bound=models.Command)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


# Strict JSON in, as on the pipe: NaN and Infinity literals are not JSON.
_decode_json = whole_decoder(json.JSONDecoder(parse_constant=_reject_constant))
# Built once: json.dumps with options builds a new encoder on every call.
_encode_utf8 = compact_encoder(ensure_ascii=False)
_encode_ascii = compact_encoder(ensure_ascii=True)


# -- JSON and text fields ---------------------------------------------------------------


def _parse(text: str, field: str, default: Any) -> Any:
    if not text:
        return default
    try:
        return _decode_json(text)
    except ValueError as exc:  # json.JSONDecodeError, over-long integers, NaN
        raise InvalidRequest(
            f"{field} is not valid JSON: {exc}", {"field": field}
        ) from None


def _json(value: Any) -> str:
    """Compact JSON text that protobuf accepts as a string (valid UTF-8)."""
    text: str = _encode_utf8(value)
    if text.isascii() or _is_utf8(text):
        return text
    # Lone surrogates cannot be UTF-8; JSON's \\u escapes carry them losslessly.
    ascii_text: str = _encode_ascii(value)
    return ascii_text


def _text(value: str) -> str:
    """A plain string field: lone surrogates (not UTF-8) become U+FFFD."""
    if value.isascii() or _is_utf8(value):
        return value
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def validated(model: type[CommandT], rpc: str, /, **params: Any) -> CommandT:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        errors = exc.errors(
            include_url=False, include_context=False, include_input=False
        )
        raise InvalidRequest(
            f"bad {rpc} request: {validation_summary(errors, 'request')}",
            {"errors": _plain(errors)},
        ) from None


def _plain(errors: list[Any]) -> list[dict[str, Any]]:
    return [
        {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in errors
    ]


def _session(name: str) -> str:
    return name or models.DEFAULT_SESSION


# -- requests to commands (server side) ---------------------------------------------------
#
# Every decoder takes ``(request, timeout)``: ``timeout`` is the call's remaining deadline
# in seconds (None: the server's default). Commands that run no code (session.open,
# session.close, session.list, interrupt) have no deadline and ignore it.


def evaluate_command(
    request: pb.EvaluateRequest, timeout: float | None = None
) -> models.Evaluate:
    """Decode an ``Evaluate`` request.

    Raises:
        InvalidRequest: ``locals_json`` is not a JSON object, or a field is invalid.
    """
    return validated(
        models.Evaluate,
        "Evaluate",
        session=_session(request.session),
        expression=request.expression,
        locals=_parse(request.locals_json, "locals_json", {}),
        timeout=timeout,
    )


def execute_command(
    request: pb.ExecuteRequest, timeout: float | None = None, *, stream: bool = False
) -> models.Execute:
    """Decode an ``Execute`` (``stream=False``) or ``ExecuteStream`` request."""
    return validated(
        models.Execute,
        "ExecuteStream" if stream else "Execute",
        session=_session(request.session),
        code=request.code,
        stream=stream,
        timeout=timeout,
    )


def execute_stream_command(
    request: pb.ExecuteRequest, timeout: float | None = None
) -> models.Execute:
    """Decode an ``ExecuteStream`` request: an ``Execute`` that streams its output."""
    return execute_command(request, timeout, stream=True)


def open_session_command(
    request: pb.OpenSessionRequest, timeout: float | None = None
) -> models.SessionOpen:
    """Decode an ``OpenSession`` request; a ``ttl`` of 0 means the server's default."""
    return validated(models.SessionOpen, "OpenSession", ttl=request.ttl or None)


def close_session_command(
    request: pb.SessionRef, timeout: float | None = None
) -> models.SessionClose:
    """Decode a ``CloseSession`` request.

    Unlike the other session-addressed requests, an empty ``session`` is refused rather
    than read as ``default``: closing resets ``default``, which must be asked for by name.

    Raises:
        InvalidRequest: ``session`` is empty.
    """
    if not request.session:
        raise InvalidRequest(
            "CloseSession needs a session; name 'default' to reset the default session",
            {"field": "session"},
        )
    return validated(models.SessionClose, "CloseSession", session=request.session)


def session_info_command(
    request: pb.SessionRef, timeout: float | None = None
) -> models.SessionInfo:
    """Decode a ``GetSessionInfo`` request."""
    return validated(
        models.SessionInfo,
        "GetSessionInfo",
        session=_session(request.session),
        timeout=timeout,
    )


def list_sessions_command(
    request: pb.ListSessionsRequest, timeout: float | None = None
) -> models.SessionList:
    """Decode a ``ListSessions`` request."""
    return models.SessionList()


def interrupt_command(
    request: pb.SessionRef, timeout: float | None = None
) -> models.Interrupt:
    """Decode an ``Interrupt`` request."""
    return validated(models.Interrupt, "Interrupt", session=_session(request.session))


def create_object_command(
    request: pb.CreateObjectRequest, timeout: float | None = None
) -> models.ObjectCreate:
    """Decode a ``CreateObject`` request.

    Raises:
        InvalidRequest: ``args_json`` is not a JSON array, ``kwargs_json`` not a JSON
            object, or ``target`` is empty.
    """
    return validated(
        models.ObjectCreate,
        "CreateObject",
        session=_session(request.session),
        target=request.target,
        args=_parse(request.args_json, "args_json", []),
        kwargs=_parse(request.kwargs_json, "kwargs_json", {}),
        timeout=timeout,
    )


def get_attribute_command(
    request: pb.GetAttributeRequest, timeout: float | None = None
) -> models.ObjectGetAttr:
    """Decode a ``GetAttribute`` request."""
    return validated(
        models.ObjectGetAttr,
        "GetAttribute",
        session=_session(request.session),
        handle=request.handle,
        name=request.name,
        timeout=timeout,
    )


def set_attribute_command(
    request: pb.SetAttributeRequest, timeout: float | None = None
) -> models.ObjectSetAttr:
    """Decode a ``SetAttribute`` request; ``value_json`` is required (``null`` is JSON).

    Raises:
        InvalidRequest: ``value_json`` is empty or not JSON.
    """
    if not request.value_json:
        raise InvalidRequest(
            "SetAttribute needs value_json: the value as JSON text, e.g. 'null'",
            {"field": "value_json"},
        )
    return validated(
        models.ObjectSetAttr,
        "SetAttribute",
        session=_session(request.session),
        handle=request.handle,
        name=request.name,
        value=_parse(request.value_json, "value_json", None),
        timeout=timeout,
    )


def call_method_command(
    request: pb.CallMethodRequest, timeout: float | None = None
) -> models.ObjectCall:
    """Decode a ``CallMethod`` request; an empty ``method`` calls the object itself."""
    return validated(
        models.ObjectCall,
        "CallMethod",
        session=_session(request.session),
        handle=request.handle,
        method=request.method or None,
        args=_parse(request.args_json, "args_json", []),
        kwargs=_parse(request.kwargs_json, "kwargs_json", {}),
        timeout=timeout,
    )


def release_objects_command(
    request: pb.ReleaseObjectsRequest, timeout: float | None = None
) -> models.ObjectRelease:
    """Decode a ``ReleaseObjects`` request."""
    return validated(
        models.ObjectRelease,
        "ReleaseObjects",
        session=_session(request.session),
        handles=list(request.handles),
        timeout=timeout,
    )


def list_objects_command(
    request: pb.SessionRef, timeout: float | None = None
) -> models.ObjectList:
    """Decode a ``ListObjects`` request."""
    return validated(
        models.ObjectList,
        "ListObjects",
        session=_session(request.session),
        timeout=timeout,
    )


def renew_lease_command(
    request: pb.LeaseRef, timeout: float | None = None
) -> models.LeaseRenew:
    """Decode a ``RenewLease`` request."""
    return validated(models.LeaseRenew, "RenewLease", lease=request.lease)


def release_lease_command(
    request: pb.LeaseRef, timeout: float | None = None
) -> models.LeaseRelease:
    """Decode a ``ReleaseLease`` request."""
    return validated(models.LeaseRelease, "ReleaseLease", lease=request.lease)


# -- results to replies (server side) -----------------------------------------------------
#
# Results are the core's JSON-ready dicts, shaped as the result models of
# beephost_protocol.models describe.


def value_reply(result: dict[str, Any]) -> pb.ValueReply:
    """Encode a ``ValueResult`` (eval, object.create, object.get_attr, object.call)."""
    return pb.ValueReply(value_json=_json(result.get("value")))


def execute_reply(result: dict[str, Any]) -> pb.ExecuteReply:
    """Encode an ``ExecResult``; ``value_json`` is ``null`` when there is no value."""
    return pb.ExecuteReply(
        stdout=_text(result.get("stdout", "")),
        stderr=_text(result.get("stderr", "")),
        value_json=_json(result.get("value")),
        has_value=bool(result.get("has_value", False)),
        stdout_dropped=int(result.get("stdout_dropped", 0)),
        stderr_dropped=int(result.get("stderr_dropped", 0)),
        outputs=[_output(output) for output in result.get("outputs", ())],
        outputs_dropped=int(result.get("outputs_dropped", 0)),
    )


def _output(output: dict[str, Any]) -> pb.Output:
    return pb.Output(
        output_type=str(output.get("output_type", "display_data")),
        data_json=_json(output.get("data", {})),
        metadata_json=_json(output.get("metadata", {})),
    )


def output_event(stream: str, data: Any) -> pb.ExecuteEvent:
    """One streamed event: a chunk of ``stdout``/``stderr``, or a ``display`` output."""
    if stream == "display":
        return pb.ExecuteEvent(display=_output(data))
    if stream == "stderr":
        return pb.ExecuteEvent(stderr=_text(data))
    return pb.ExecuteEvent(stdout=_text(data))


def result_event(result: dict[str, Any]) -> pb.ExecuteEvent:
    """The last message of an ``ExecuteStream`` call."""
    return pb.ExecuteEvent(result=execute_reply(result))


def open_session_reply(result: dict[str, Any]) -> pb.OpenSessionReply:
    """Encode a ``SessionOpened``."""
    return pb.OpenSessionReply(session=result["session"], ttl=float(result["ttl"]))


def session_closed_reply(result: dict[str, Any]) -> pb.CloseSessionReply:
    """Encode a ``SessionClosed``."""
    return pb.CloseSessionReply(closed=bool(result["closed"]))


def session_info_reply(result: dict[str, Any]) -> pb.SessionInfoReply:
    """Encode a ``SessionDescription``; a ``ttl`` of None (never expires) becomes 0."""
    return pb.SessionInfoReply(
        session=result["session"],
        environment=_text(result["environment"]),
        python_version=_text(result["python_version"]),
        implementation=_text(result["implementation"]),
        executable=_text(result["executable"]),
        pid=int(result["pid"]),
        packages={
            _text(name): _text(version) for name, version in result["packages"].items()
        },
        handles=int(result["handles"]),
        requests=int(result["requests"]),
        created_at=float(result["created_at"]),
        idle_seconds=float(result["idle_seconds"]),
        ttl=float(result["ttl"] or 0.0),
    )


def session_listing_reply(result: dict[str, Any]) -> pb.ListSessionsReply:
    """Encode a ``SessionListing``."""
    return pb.ListSessionsReply(sessions=result["sessions"])


def interrupt_reply(result: dict[str, Any]) -> pb.InterruptReply:
    """Encode an ``InterruptResult``."""
    return pb.InterruptReply(interrupted=bool(result["interrupted"]))


def set_attribute_reply(result: dict[str, Any]) -> pb.SetAttributeReply:
    """Encode an ``EmptyResult``."""
    return pb.SetAttributeReply()


def release_reply(result: dict[str, Any]) -> pb.ReleaseObjectsReply:
    """Encode a ``ReleaseResult``."""
    return pb.ReleaseObjectsReply(released=int(result["released"]))


def handle_list_reply(result: dict[str, Any]) -> pb.ListObjectsReply:
    """Encode a ``HandleList``."""
    return pb.ListObjectsReply(
        handles=[
            pb.HandleInfo(id=h["id"], type=_text(h["type"]), repr=_text(h["repr"]))
            for h in result["handles"]
        ]
    )


def renew_lease_reply(result: dict[str, Any]) -> pb.RenewLeaseReply:
    """Encode a ``LeaseRenewed``."""
    return pb.RenewLeaseReply(
        lease=result["lease"], ttl=result["ttl"], handles=result["handles"]
    )


def release_lease_reply(result: dict[str, Any]) -> pb.ReleaseLeaseReply:
    """Encode a ``LeaseReleased``."""
    return pb.ReleaseLeaseReply(lease=result["lease"], released=result["released"])


# -- commands to requests, replies to results (client side) ------------------------------


@dataclass(frozen=True, slots=True)
class RpcSpec:
    """How one command travels: the RPC method, its request and reply message types.

    Attributes:
        method: The method name in ``beephost.exec.v1.Executor``, e.g. ``Evaluate``.
        request: The request message class.
        reply: The reply message class (``ExecuteEvent`` for ``ExecuteStream``).
        streaming: True for the server-streaming ``ExecuteStream``.
        data_chunks: Replies may be data-only chunks (``pb_chunks``), read by hand.
    """

    method: str
    request: type[Message]
    reply: type[Message]
    streaming: bool = False
    data_chunks: bool = False

    @property
    def parse_reply(self) -> Callable[[bytes], Any]:
        """The reply's deserializer: protobuf's, but for data-only chunks, whose
        bytes are read by hand (one copy where protobuf's runtime makes three)."""
        parse = self.reply.FromString
        return pb_chunks.data_or(parse) if self.data_chunks else parse

    @property
    def path(self) -> str:
        """The gRPC method path, e.g. ``/beephost.exec.v1.Executor/Evaluate``."""
        return f"/{SERVICE_NAME}/{self.method}"


_SPECS: dict[str, RpcSpec] = {
    spec.method: spec
    for spec in (
        RpcSpec("Evaluate", pb.EvaluateRequest, pb.ValueReply),
        RpcSpec("Execute", pb.ExecuteRequest, pb.ExecuteReply),
        RpcSpec("ExecuteStream", pb.ExecuteRequest, pb.ExecuteEvent, streaming=True),
        RpcSpec("OpenSession", pb.OpenSessionRequest, pb.OpenSessionReply),
        RpcSpec("CloseSession", pb.SessionRef, pb.CloseSessionReply),
        RpcSpec("GetSessionInfo", pb.SessionRef, pb.SessionInfoReply),
        RpcSpec("ListSessions", pb.ListSessionsRequest, pb.ListSessionsReply),
        RpcSpec("Interrupt", pb.SessionRef, pb.InterruptReply),
        RpcSpec("CreateObject", pb.CreateObjectRequest, pb.ValueReply),
        RpcSpec("GetAttribute", pb.GetAttributeRequest, pb.ValueReply),
        RpcSpec("SetAttribute", pb.SetAttributeRequest, pb.SetAttributeReply),
        RpcSpec("CallMethod", pb.CallMethodRequest, pb.ValueReply),
        RpcSpec("ReleaseObjects", pb.ReleaseObjectsRequest, pb.ReleaseObjectsReply),
        RpcSpec("ListObjects", pb.SessionRef, pb.ListObjectsReply),
        RpcSpec("RenewLease", pb.LeaseRef, pb.RenewLeaseReply),
        RpcSpec("ReleaseLease", pb.LeaseRef, pb.ReleaseLeaseReply),
    )
}


def encode_command(command: models.Command) -> tuple[RpcSpec, Message]:
    """Turn a command into the RPC that carries it and its request message.

    A command's ``timeout`` is not part of the message: the caller sets it as the call's
    gRPC deadline. ``Execute`` with ``stream=True`` goes to ``ExecuteStream``.

    Args:
        command: Any command model of ``beephost_protocol.models``.

    Returns:
        The RPC's spec (method, message types) and the request message.

    Raises:
        InvalidRequest: The command has no RPC, or a value cannot be sent as JSON.

    Example:
        >>> spec, request = encode_command(models.Evaluate(expression="1 + 1"))
        >>> spec.method, request.expression
        ('Evaluate', '1 + 1')
    """
    try:
        return _encode_command(command)
    except ValueError as exc:  # NaN in a value: the client should have tagged it
        raise InvalidRequest(f"cannot encode {command.COMMAND!r}: {exc}") from None


def _encode_command(command: models.Command) -> tuple[RpcSpec, Message]:
    match command:
        case models.Evaluate():
            return _SPECS["Evaluate"], pb.EvaluateRequest(
                session=command.session,
                expression=command.expression,
                locals_json=_json(command.locals) if command.locals else "",
            )
        case models.Execute():
            method = "ExecuteStream" if command.stream else "Execute"
            return _SPECS[method], pb.ExecuteRequest(
                session=command.session, code=command.code
            )
        case models.SessionOpen():
            return _SPECS["OpenSession"], pb.OpenSessionRequest(ttl=command.ttl or 0.0)
        case models.SessionClose():
            return _SPECS["CloseSession"], pb.SessionRef(session=command.session)
        case models.SessionInfo():
            return _SPECS["GetSessionInfo"], pb.SessionRef(session=command.session)
        case models.SessionList():
            return _SPECS["ListSessions"], pb.ListSessionsRequest()
        case models.Interrupt():
            return _SPECS["Interrupt"], pb.SessionRef(session=command.session)
        case models.ObjectCreate():
            return _SPECS["CreateObject"], pb.CreateObjectRequest(
                session=command.session,
                target=command.target,
                args_json=_json(command.args) if command.args else "",
                kwargs_json=_json(command.kwargs) if command.kwargs else "",
            )
        case models.ObjectGetAttr():
            return _SPECS["GetAttribute"], pb.GetAttributeRequest(
                session=command.session, handle=command.handle, name=command.name
            )
        case models.ObjectSetAttr():
            return _SPECS["SetAttribute"], pb.SetAttributeRequest(
                session=command.session,
                handle=command.handle,
                name=command.name,
                value_json=_json(command.value),
            )
        case models.ObjectCall():
            return _SPECS["CallMethod"], pb.CallMethodRequest(
                session=command.session,
                handle=command.handle,
                method=command.method or "",
                args_json=_json(command.args) if command.args else "",
                kwargs_json=_json(command.kwargs) if command.kwargs else "",
            )
        case models.ObjectRelease():
            return _SPECS["ReleaseObjects"], pb.ReleaseObjectsRequest(
                session=command.session, handles=command.handles
            )
        case models.ObjectList():
            return _SPECS["ListObjects"], pb.SessionRef(session=command.session)
        case models.LeaseRenew():
            return _SPECS["RenewLease"], pb.LeaseRef(lease=command.lease)
        case models.LeaseRelease():
            return _SPECS["ReleaseLease"], pb.LeaseRef(lease=command.lease)
    raise InvalidRequest(f"command {command.COMMAND!r} has no RPC")


def _value_result(reply: pb.ValueReply) -> dict[str, Any]:
    return {"value": _parse_reply(reply.value_json)}


def _exec_result(reply: pb.ExecuteReply) -> dict[str, Any]:
    result = {
        "stdout": reply.stdout,
        "stderr": reply.stderr,
        "value": _parse_reply(reply.value_json),
        "has_value": reply.has_value,
        "stdout_dropped": reply.stdout_dropped,
        "stderr_dropped": reply.stderr_dropped,
    }
    if reply.outputs or reply.outputs_dropped:  # as the pipe protocol: only if any
        result["outputs"] = [_output_dict(output) for output in reply.outputs]
        result["outputs_dropped"] = reply.outputs_dropped
    return result


def _output_dict(output: pb.Output) -> dict[str, Any]:
    return {
        "output_type": output.output_type,
        "data": _parse_reply(output.data_json) or {},
        "metadata": _parse_reply(output.metadata_json) or {},
    }


def _info_result(reply: pb.SessionInfoReply) -> dict[str, Any]:
    return {
        "session": reply.session,
        "environment": reply.environment,
        "python_version": reply.python_version,
        "implementation": reply.implementation,
        "executable": reply.executable,
        "pid": reply.pid,
        "packages": dict(reply.packages),
        "handles": reply.handles,
        "requests": reply.requests,
        "created_at": reply.created_at,
        "idle_seconds": reply.idle_seconds,
        "ttl": reply.ttl or None,
    }


_RESULTS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "Evaluate": _value_result,
    "Execute": _exec_result,
    "OpenSession": lambda r: {"session": r.session, "ttl": r.ttl},
    "CloseSession": lambda r: {"closed": r.closed},
    "GetSessionInfo": _info_result,
    "ListSessions": lambda r: {"sessions": list(r.sessions)},
    "Interrupt": lambda r: {"interrupted": r.interrupted},
    "CreateObject": _value_result,
    "GetAttribute": _value_result,
    "SetAttribute": lambda r: {},
    "CallMethod": _value_result,
    "ReleaseObjects": lambda r: {"released": r.released},
    "ListObjects": lambda r: {
        "handles": [{"id": h.id, "type": h.type, "repr": h.repr} for h in r.handles]
    },
    "RenewLease": lambda r: {"lease": r.lease, "ttl": r.ttl, "handles": r.handles},
    "ReleaseLease": lambda r: {"lease": r.lease, "released": r.released},
}


def _parse_reply(text: str) -> Any:
    return _decode_json(text) if text else None


def decode_reply(spec: RpcSpec, reply: Message) -> dict[str, Any]:
    """Turn a unary reply into the result dict the pipe protocol would have carried.

    Args:
        spec: The RPC's spec, as returned by :func:`encode_command`.
        reply: The reply message (the ``result`` of the last ``ExecuteEvent`` for
            ``ExecuteStream``).

    Returns:
        A JSON-ready dict shaped as the command's result model; values stay in their
        wire form (decode them with ``beephost_protocol.decode_value``).

    Example:
        >>> decode_reply(_SPECS["Evaluate"], pb.ValueReply(value_json='{"$float":"nan"}'))
        {'value': {'$float': 'nan'}}
    """
    method = "Execute" if spec.streaming else spec.method
    if not isinstance(reply, _SPECS[method].reply):
        raise TypeError(f"{spec.method} replies with {_SPECS[method].reply.__name__}")
    return _RESULTS[method](reply)


def decode_event(
    event: pb.ExecuteEvent,
) -> tuple[models.EventName, Any] | dict[str, Any]:
    """One ``ExecuteStream`` message: ``(stream, text)`` for output, ``("display",
    output)`` for a rich output, the result dict last.

    Example:
        >>> decode_event(pb.ExecuteEvent(stdout="hi\\n"))
        ('stdout', 'hi\\n')
    """
    kind = event.WhichOneof("event")
    if kind == "stdout":
        return "stdout", event.stdout
    if kind == "stderr":
        return "stderr", event.stderr
    if kind == "display":
        return "display", _output_dict(event.display)
    return _exec_result(event.result)


# -- errors -------------------------------------------------------------------------------


def encode_error(error: BeepHostError, limit: int = MAX_ERROR_BYTES) -> str:
    """The error object as ASCII JSON for the ``beephost-error`` trailing metadata.

    gRPC metadata values must be printable ASCII and small, so non-ASCII characters are
    escaped and, when the object is over ``limit`` bytes, its longest string fields in
    ``data`` other than those every transport cuts alike (``MAX_ERROR_BYTES``) are cut
    from the front (``"[... N characters cut] "`` marks the cut) and listed in
    ``data["truncated"]``.

    Example:
        >>> encode_error(InvalidRequest("bad"))
        '{"code":"invalid_request","message":"bad","data":{}}'
    """
    payload = error.to_wire()
    strings = len(error.message) + sum(
        len(value) for value in error.data.values() if isinstance(value, str)
    )
    if strings <= limit:  # else it cannot fit: skip encoding megabytes of output
        text: str = _encode_ascii(payload)
        if len(text) <= limit:
            return text
    return _shrink(payload, limit)


def _shrink(payload: dict[str, Any], limit: int) -> str:
    message = str(payload["message"])
    data = dict(payload["data"])
    # Long strings share what is left fairly; each keeps its tail (a traceback ends
    # with the exception, output with its last lines). Characters escape to 1 to 12
    # bytes, so sizes are measured, not computed, and a few rounds converge.
    originals = {
        k: v
        for k, v in data.items()
        if isinstance(v, str) and len(v) > 64 and k not in _SAME_EVERYWHERE
    }
    # No string keeps more characters than the limit has bytes: start from there.
    keep = {key: min(len(value), limit) for key, value in originals.items()}
    for _ in range(16):
        for key, value in originals.items():
            cut = len(value) - keep[key]
            data[key] = f"[... {cut} characters cut] {value[cut:]}" if cut else value
        truncated = sorted(key for key in originals if keep[key] < len(originals[key]))
        if truncated:
            data["truncated"] = truncated
        text: str = _encode_ascii(
            {"code": payload["code"], "message": message, "data": data}
        )
        excess = len(text) - limit
        if excess <= 0:
            return text
        if not originals:
            break
        sizes = {key: len(_encode_ascii(data[key])) for key in originals}
        caps = _fair_shares(sizes, sum(sizes.values()) - excess)
        for key, cap in caps.items():
            if cap < sizes[key]:
                keep[key] = max(
                    0, min(keep[key] - 1, keep[key] * cap // sizes[key] - 40)
                )
    # What every transport shows alike stays; the rest goes.
    kept = {k: v for k, v in payload["data"].items() if k in _SAME_EVERYWHERE}
    dropped = sorted(k for k in payload["data"] if k not in _SAME_EVERYWHERE)
    fallback: str = _encode_ascii(
        {
            "code": payload["code"],
            "message": message,
            "data": {**kept, "truncated": dropped},
        }
    )
    return fallback


def _fair_shares(sizes: dict[str, int], budget: int) -> dict[str, int]:
    """Split ``budget`` so that small items keep their size and big ones share the rest."""
    shares: dict[str, int] = {}
    remaining = max(0, budget)
    ordered = sorted(sizes.items(), key=lambda item: item[1])
    for index, (key, size) in enumerate(ordered):
        shares[key] = min(size, remaining // (len(ordered) - index))
        remaining -= shares[key]
    return shares


def decode_error(text: str | bytes) -> BeepHostError | None:
    """Decode the ``beephost-error`` metadata value; None if it is not an error object.

    Example:
        >>> decode_error('{"code":"not_found","message":"no session","data":{}}')
        NotFound('no session')
    """
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("code"), str):
        return None
    return error_from_wire(payload)


def error_from_metadata(metadata: Iterable[Any] | None) -> BeepHostError | None:
    """Find and decode the ``beephost-error`` entry of trailing metadata, if any.

    Args:
        metadata: ``(key, value)`` pairs, as ``grpc.RpcError.trailing_metadata()``
            returns them (plain tuples, or grpc.aio's ``Metadatum`` named tuples).
    """
    for key, value in metadata or ():
        if key == ERROR_METADATA_KEY:
            return decode_error(value)
    return None
