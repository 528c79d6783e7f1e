"""Frames to commands and results to frames: the pipe protocol, sans-I/O."""

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from beephost_protocol import COMMANDS, Command, LineTooLong, encode
from beephost_protocol.errors import (
    BeepHostError,
    InvalidRequest,
    TooLarge,
    validation_summary,
)
from beephost_protocol.jsoncodec import whole_decoder
from beephost_protocol.payloads import (
    PAYLOAD_MEMBER,
    PAYLOAD_REQUESTS,
    PayloadTooLarge,
    binary_frame,
)

RequestId = int | str | None

# Commands the transport answers itself; everything else goes to the core.
TRANSPORT_COMMANDS = frozenset({"hello", "ping"})


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded request: ``command`` is None for hello and ping."""

    id: RequestId
    type: str
    params: dict[str, Any]
    command: Command | None


class FrameError(Exception):
    """A frame that cannot be served; ``id`` is echoed when it could be read."""

    def __init__(self, request_id: RequestId, error: BeepHostError) -> None:
        super().__init__(error.message)
        self.id = request_id
        self.error = error


def decode_frame(line: bytes, payload: bytes | None = None) -> Frame:
    """Parse and validate one request line, and the binary payload that came with it.

    Raises:
        FrameError: Not JSON, not an object, missing ``id`` or ``type``, an unknown
            ``type``, ``params`` that do not fit the command, or a payload sent to a
            command that takes none.
    """
    try:
        message = _decode(line.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError(
            None, InvalidRequest(f"frame is not valid JSON: {exc}")
        ) from None
    except RecursionError:  # json's C scanner recurses: a depth bomb is no valid frame
        raise FrameError(
            None, InvalidRequest("frame is not valid JSON: nested too deeply")
        ) from None
    if not isinstance(message, dict):
        raise FrameError(None, InvalidRequest("frame must be a JSON object"))
    request_id = message.get("id")
    if not isinstance(request_id, int | str) or isinstance(request_id, bool):
        raise FrameError(
            None, InvalidRequest("frame needs an 'id' (integer or string)")
        )
    kind = message.get("type")
    if not isinstance(kind, str):
        raise FrameError(request_id, InvalidRequest("frame needs a 'type' (string)"))
    params = message.get("params", {})
    if not isinstance(params, dict):
        raise FrameError(request_id, InvalidRequest("'params' must be a JSON object"))
    if payload is not None:
        params = _with_payload(request_id, kind, params, payload)
    if kind in TRANSPORT_COMMANDS:
        return Frame(request_id, kind, params, None)
    model = COMMANDS.get(kind)
    if model is None:
        raise FrameError(
            request_id, InvalidRequest(f"unknown command {kind!r}", {"type": kind})
        )
    try:
        command = model.model_validate(params)
    except ValidationError as exc:
        errors = exc.errors(
            include_url=False, include_context=False, include_input=False
        )
        raise FrameError(
            request_id,
            InvalidRequest(
                f"bad params for {kind!r}: {validation_summary(errors, 'params')}",
                {"errors": errors},
            ),
        ) from None
    return Frame(request_id, kind, params, command)


def _with_payload(
    request_id: RequestId, kind: str, params: dict[str, Any], payload: bytes
) -> dict[str, Any]:
    if kind not in PAYLOAD_REQUESTS:
        raise FrameError(
            request_id,
            InvalidRequest(
                f"{kind!r} takes no binary payload; only "
                f"{', '.join(sorted(PAYLOAD_REQUESTS))} does",
                {"type": kind},
            ),
        )
    if PAYLOAD_MEMBER in params:
        raise FrameError(
            request_id,
            InvalidRequest(
                f"'params.{PAYLOAD_MEMBER}' and a binary payload both given: send the "
                "bytes one way"
            ),
        )
    return {**params, PAYLOAD_MEMBER: payload}


def result_frame(request_id: RequestId, result: dict[str, Any]) -> bytes:
    return encode({"id": request_id, "result": result})


def reply_frame(
    request_id: RequestId, result: dict[str, Any] | bytes
) -> tuple[bytes, ...]:
    """A response: its line, and a binary payload after it when ``result`` holds raw
    bytes as its ``data`` (a ``file.read`` that asked for ``binary``). ``result`` in
    bytes: a worker's result as JSON text (``Executor.run``'s ``raw``)."""
    if isinstance(result, bytes):
        return (_forwarded_result_frame(request_id, result),)
    payload = result.get(PAYLOAD_MEMBER)
    if isinstance(payload, bytes):
        header = {k: v for k, v in result.items() if k != PAYLOAD_MEMBER}
        return binary_frame(result_frame(request_id, header), payload)
    return (result_frame(request_id, result),)


def _forwarded_result_frame(request_id: RequestId, text: bytes) -> bytes:
    """``result_frame`` of a result the worker encoded, byte for byte the same.

    The worker's encoder is ours but for ``ensure_ascii``: the two differ only in
    ``\\u`` escapes (non-ASCII text, DEL), so a text without one travels as it is,
    neither decoded nor encoded again; one with them is.
    """
    if b"\\u" in text:
        return result_frame(request_id, _decode(text.decode()))
    if type(request_id) is int:
        return b'{"id":%d,"result":%b}\n' % (request_id, text)
    head = encode({"id": request_id})  # b'{"id":"..."}\n'
    return b'%b,"result":%b}\n' % (head[:-2], text)


def error_frame(request_id: RequestId, error: BeepHostError) -> bytes:
    return encode({"id": request_id, "error": error.to_wire()})


def event_frame(request_id: RequestId, stream: str, data: Any) -> bytes:
    # data: text for stdout/stderr, one output object for display.
    return encode({"id": request_id, "event": stream, "data": data})


# The id is read back from the head of a discarded line when it is the first member.
_LEADING_ID = re.compile(
    rb'^\s*\{\s*"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\]|\\.){0,128}")\s*,'
)


def too_long_error(line: LineTooLong, limit: int) -> bytes:
    error = TooLarge(
        f"frame of {line.size} bytes exceeds the {limit}-byte limit; it was discarded",
        {"size": line.size, "limit": limit},
    )
    return error_frame(_leading_id(line.head), error)


def payload_too_large_error(frame: PayloadTooLarge, limit: int) -> bytes:
    error = TooLarge(
        f"binary payload of {frame.size} bytes exceeds the {limit}-byte limit; "
        "it was discarded",
        {"size": frame.size, "limit": limit},
    )
    return error_frame(_leading_id(frame.line), error)


def _leading_id(head: bytes) -> RequestId:
    match = _LEADING_ID.match(head)
    if match is None:
        return None
    try:
        request_id: RequestId = json.loads(match.group(1))
    except ValueError:  # 007, a bad escape, bad UTF-8: not an id we can echo
        return None
    return request_id


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


# Built once: json.loads with options constructs a decoder on every call.
_decode = whole_decoder(json.JSONDecoder(parse_constant=_reject_constant))
