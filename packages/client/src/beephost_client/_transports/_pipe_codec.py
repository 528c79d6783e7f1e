"""The pipe protocol without I/O: request lines, the handshake, reply classification.

docs/protocol/pipe.md; unit-tested with bytes and dicts. The connections that carry
these lines are in ``_pipeio``.
"""

import json
from typing import Any

from beephost_client._exceptions import ConnectionLost, ErrorReply
from beephost_client._models import OutputChunk, output_of, parse
from beephost_client._transports.base import StreamItem
from beephost_protocol import Command, encode
from beephost_protocol.errors import (
    ExecutionTimeout,
    InternalError,
    TooLarge,
    error_from_wire,
)
from beephost_protocol.payloads import (
    PAYLOAD_MEMBER,
    PAYLOAD_REQUESTS,
    BadPrefix,
    binary_frame,
    split_prefix,
)
from beephost_protocol.schema import HelloResult

PROTOCOL_MAJOR = "1"
DEFAULT_MAX_FRAME = 32 << 20
# Replies are bounded by the server's result limit (16 MiB by default) plus envelope
# and escaping; the spec asks clients to accept at least 32 MiB lines.
MAX_REPLY_LINE = 256 << 20


def request_frame(
    request_id: int, command: Command, max_frame: int
) -> tuple[bytes, bytes]:
    """One request: its line, and the binary payload to send right after it (empty
    but for a command whose bytes travel raw, ``file.upload.write``). Refuses, as the
    server would, a line over ``max_frame``.

    Raises:
        TooLarge: The encoded request is longer than the server accepts.
    """
    binary = command.COMMAND in PAYLOAD_REQUESTS
    params = command.model_dump(
        exclude_defaults=True, exclude={PAYLOAD_MEMBER} if binary else None
    )
    line = encode({"id": request_id, "type": command.COMMAND, "params": params})
    if len(line) - 1 > max_frame:
        raise TooLarge(
            f"request of {len(line) - 1} bytes exceeds the server's "
            f"{max_frame}-byte limit; it was not sent",
            {"size": len(line) - 1, "limit": max_frame},
        )
    if binary:
        return binary_frame(line, getattr(command, PAYLOAD_MEMBER))
    return line, b""


def hello_line(request_id: int, token: str | None) -> bytes:
    return encode(
        {"id": request_id, "type": "hello", "params": {"token": token} if token else {}}
    )


def check_hello(result: Any) -> int:
    """Validate a ``hello`` result; return the server's ``max_frame_bytes``.

    Raises:
        InternalError: The server speaks another major protocol version.
        BadReply: The result is not a ``HelloResult``.
    """
    # The version first: another major version may shape its hello differently.
    protocol = str(result.get("protocol", "")) if isinstance(result, dict) else ""
    if protocol.split(".")[0] != PROTOCOL_MAJOR:
        raise InternalError(
            f"the server speaks pipe protocol {protocol!r}; this client speaks "
            f"{PROTOCOL_MAJOR}.x",
            {"protocol": protocol},
        )
    return parse(HelloResult, result).max_frame_bytes


def announced_payload(line: bytes) -> tuple[int, bytes] | None:
    """The size of the binary payload after ``line``, and the line without its prefix;
    None for a plain line.

    Raises:
        InternalError: A malformed prefix, or a payload larger than any reply.
    """
    try:
        announced = split_prefix(line)
    except BadPrefix as exc:
        raise InternalError(f"the server sent a bad binary frame: {exc}") from exc
    if announced is not None and announced[0] > MAX_REPLY_LINE:
        raise InternalError(
            f"the server announced a {announced[0]}-byte payload, over the "
            f"{MAX_REPLY_LINE} bytes a reply may have"
        )
    return announced


def parse_line(line: bytes) -> dict[str, Any]:
    """Decode one line from the server.

    Raises:
        InternalError: The line is not a JSON object.
    """
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise InternalError(f"the server sent a line that is not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise InternalError("the server sent a line that is not a JSON object")
    return message


def classify(
    message: dict[str, Any], request_id: int, payload: bytes | None = None
) -> StreamItem | None:
    """What ``message`` means for the one request in flight with ``request_id``;
    ``payload`` is the binary payload that came with it, if any: its result's ``data``.

    Returns:
        An :class:`OutputChunk` for an event, the result dict for a response, or None
        for a line to ignore (another id, an unknown kind: forward compatibility).

    Raises:
        BeepHostError: The response is an error (an ``"id": null`` error, which names
            no request, is taken as the answer: one request is in flight).
    """
    rid = message.get("id")
    if rid != request_id and rid is not None:
        return None
    if "result" in message and rid is not None:
        result = message["result"]
        if not isinstance(result, dict):
            return {}
        return result if payload is None else result | {PAYLOAD_MEMBER: payload}
    if "error" in message:
        error = message["error"] if isinstance(message["error"], dict) else {}
        raise error_from_wire(error) from ErrorReply("pipe", error)
    if rid is not None and message.get("event") in ("stdout", "stderr"):
        return OutputChunk(message["event"], str(message.get("data", "")))
    if rid is not None and message.get("event") == "display":
        return output_of(message.get("data"))
    return None


def timed_out(what: str, waited: float, exc: BaseException) -> ExecutionTimeout:
    error = ExecutionTimeout(
        f"no reply to {what} within {waited:.3g}s (client-side limit)",
        {"client_side": True},
    )
    error.__cause__ = exc
    return error


def lost(path: str, exc: BaseException) -> ConnectionLost:
    error = ConnectionLost(
        f"connection to unix:{path} lost: {exc or type(exc).__name__}", {"path": path}
    )
    error.__cause__ = exc
    return error
