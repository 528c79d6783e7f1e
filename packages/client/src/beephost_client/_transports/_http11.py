"""The HTTP API's mapping and a minimal HTTP/1.1 client codec, sans-I/O.

:func:`route` maps a command to its method, path and JSON body (the HTTP backend's
routes); :func:`result_or_error` and :func:`stream_item` map responses back. The rest
(:func:`request_bytes`, :func:`parse_head`, :func:`chunk_size`) is the small part of
HTTP/1.1 the asyncio transport needs on top of ``asyncio`` streams: a request with a
``Content-Length`` body, and a response framed by ``Content-Length``, ``chunked`` or
the end of the connection.
"""

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from beephost_client._exceptions import ErrorReply
from beephost_client._models import OutputChunk, output_of
from beephost_client._transports.base import StreamItem
from beephost_protocol import Command, encode, files
from beephost_protocol import models as wire
from beephost_protocol.errors import BeepHostError, InternalError, error_from_wire

TIMEOUT_HEADER = "X-Beephost-Timeout"
LEASE_HEADER = "Beephost-Lease"

# The codes errors.md lets a client infer from a bare status (a proxy's error page).
_STATUS_FALLBACK = {401: "unauthorized", 503: "unavailable", 504: "timeout"}


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    body: bytes | None  # JSON, or None for GET and DELETE
    deadline: float | None  # the server-side deadline, also sent as a header
    headers: tuple[tuple[str, str], ...] = ()  # beyond the endpoint's own


def _q(segment: str) -> str:
    return quote(segment, safe="")


def _body(params: dict[str, Any]) -> bytes:
    return encode(params)  # strict JSON (values are already $-tagged), one line


# The /api/fs operation of each file metadata command.
_FS = {
    "file.stat": "stat",
    "file.list": "list",
    "file.mkdir": "mkdir",
    "file.remove": "remove",
    "file.rename": "rename",
}


def route(command: Command, prefix: str = "") -> Route:
    """The request that carries ``command`` on the HTTP API.

    Raises:
        InternalError: The command has no route (a bug: every command has one).
    """
    params = command.model_dump(exclude_defaults=True)
    deadline = params.get("timeout")
    session = getattr(command, "session", None)
    objects = f"{prefix}/api/sessions/{_q(session or '')}/objects"
    match command:
        case wire.Evaluate():
            return Route("POST", f"{prefix}/api/eval", _body(params), deadline)
        case wire.Execute():
            path = "/api/exec/stream" if params.pop("stream", False) else "/api/exec"
            return Route("POST", prefix + path, _body(params), deadline)
        case wire.SessionOpen():
            return Route("POST", f"{prefix}/api/sessions", _body(params), None)
        case wire.SessionList():
            return Route("GET", f"{prefix}/api/sessions", None, None)
        case wire.SessionInfo():
            return Route(
                "GET", f"{prefix}/api/sessions/{_q(command.session)}", None, deadline
            )
        case wire.SessionClose():
            return Route(
                "DELETE", f"{prefix}/api/sessions/{_q(command.session)}", None, None
            )
        case wire.Interrupt():
            path = f"{prefix}/api/sessions/{_q(command.session)}/interrupt"
            return Route("POST", path, b"{}", None)
        case wire.ObjectCreate():
            params.pop("session", None)
            return Route("POST", objects, _body(params), deadline)
        case wire.ObjectList():
            return Route("GET", objects, None, deadline)
        case wire.ObjectGetAttr():
            path = f"{objects}/{_q(command.handle)}/attributes/{_q(command.name)}"
            return Route("GET", path, None, deadline)
        case wire.ObjectSetAttr():
            path = f"{objects}/{_q(command.handle)}/attributes/{_q(command.name)}"
            body = {"value": command.value, "timeout": deadline}
            return Route("PUT", path, _body(body), deadline)
        case wire.ObjectCall():
            body = {k: v for k, v in params.items() if k not in ("session", "handle")}
            return Route(
                "POST", f"{objects}/{_q(command.handle)}/call", _body(body), deadline
            )
        case wire.ObjectRelease():
            return Route(
                "POST",
                f"{objects}/release",
                _body({"handles": command.handles}),
                deadline,
            )
        case files.FileStat() | files.FileList() | files.FileMkdir():
            return Route(
                "POST", f"{prefix}/api/fs/{_FS[command.COMMAND]}", _body(params), None
            )
        case files.FileRemove() | files.FileRename():
            return Route(
                "POST", f"{prefix}/api/fs/{_FS[command.COMMAND]}", _body(params), None
            )
        case files.WorkspaceUsage():
            return Route("GET", f"{prefix}/api/fs/usage", None, None)
        case wire.LeaseRenew():
            return Route("PUT", f"{prefix}/api/leases/{_q(command.lease)}", b"", None)
        case wire.LeaseRelease():
            return Route(
                "DELETE", f"{prefix}/api/leases/{_q(command.lease)}", None, None
            )
    raise InternalError(f"no HTTP route for {command.COMMAND!r}")


def json_object(body: bytes) -> dict[str, Any] | None:
    """``body`` decoded if it is a JSON object; None for anything else."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def error_of(status: int, body: bytes) -> BeepHostError:
    """The exception for an error response, chained to an :class:`ErrorReply`."""
    decoded = json_object(body)
    payload = decoded.get("error") if decoded else None
    if not isinstance(payload, dict) or not isinstance(payload.get("code"), str):
        # No error object (a proxy's page): fall back to the status (errors.md).
        text = body[:200].decode("utf-8", "replace").strip()
        payload = {
            "code": _STATUS_FALLBACK.get(status, f"http_{status}"),
            "message": f"HTTP {status}" + (f": {text}" if text else ""),
            "data": {"status": status},
        }
    error = error_from_wire(payload)
    error.__cause__ = ErrorReply("http", payload, status)
    return error


def result_or_error(status: int, body: bytes) -> dict[str, Any]:
    """The result object of a response; raise the mapped error for a non-2xx one."""
    if 200 <= status < 300:
        decoded = json_object(body)
        if decoded is None:
            raise InternalError(f"HTTP {status} with a body that is not a JSON object")
        return decoded
    raise error_of(status, body)


def stream_item(line: bytes) -> StreamItem | None:
    """One NDJSON line of ``/api/exec/stream``; None for an unknown kind (ignored)."""
    message = json_object(line)
    if message is None:
        if not line.strip():
            return None
        raise InternalError("the server sent a stream line that is not a JSON object")
    if "result" in message and isinstance(message["result"], dict):
        result: dict[str, Any] = message["result"]
        return result
    if "error" in message and isinstance(message["error"], dict):
        payload = message["error"]
        raise error_from_wire(payload) from ErrorReply("http", payload, 200)
    if message.get("event") in ("stdout", "stderr"):
        return OutputChunk(message["event"], str(message.get("data", "")))
    if message.get("event") == "display":
        return output_of(message.get("data"))
    return None


# -- HTTP/1.1 framing for the asyncio transport ------------------------------------------


@dataclass(frozen=True, slots=True)
class Head:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    keep_alive: bool

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None else None


def request_bytes(
    method: str, target: str, host: str, headers: dict[str, str], body: bytes | None
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


def file_target(prefix: str, path: str) -> str:
    """The URL path of a file's bytes; every character of ``path`` is escaped, so
    that no ``..`` or ``//`` is folded on the way."""
    return f"{prefix}/api/files/{_q(path)}"


def upload_head(
    target: str, host: str, headers: dict[str, str], size: int | None
) -> bytes:
    """The head of a PUT of a file's bytes: a Content-Length when the size is known,
    else chunked. It asks for ``100 Continue``, so a refusal (the quota, a taken
    name) comes before the body is sent."""
    lines = [f"PUT {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += ["Content-Type: application/octet-stream", "Expect: 100-continue"]
    lines.append(
        f"Content-Length: {size}" if size is not None else "Transfer-Encoding: chunked"
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk_frame(data: bytes) -> bytes:
    """``data`` as one chunk of a ``chunked`` body (b"" ends the body)."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def range_header(offset: int, length: int | None) -> dict[str, str]:
    if offset == 0 and length is None:
        return {}
    end = "" if length is None else str(offset + length - 1)
    return {"Range": f"bytes={offset}-{end}"}


class ProtocolError(Exception):
    """The server's bytes are not HTTP/1.1 as this client understands it."""


def parse_head(data: bytes) -> Head:
    """Parse a status line and headers (``data`` ends with the blank line).

    Raises:
        ProtocolError: Not an HTTP/1.x response head.
    """
    try:
        text = data.decode("latin-1")
        status_line, *header_lines = text.split("\r\n")
        version, status, *_ = status_line.split(" ", 2)
        code = int(status)
    except ValueError as exc:
        raise ProtocolError(f"bad status line in {data[:80]!r}") from exc
    if not version.startswith("HTTP/1."):
        raise ProtocolError(f"not HTTP/1.x: {status_line!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"bad header line {line!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    connection = headers.get("connection", "").lower()
    keep_alive = (
        "keep-alive" in connection
        if version == "HTTP/1.0"
        else "close" not in connection
    )
    return Head(code, headers, keep_alive)


def chunk_size(line: bytes) -> int:
    """The size of a ``chunked`` chunk from its size line (extensions ignored).

    Raises:
        ProtocolError: Not a hexadecimal size.
    """
    try:
        return int(line.split(b";", 1)[0].strip(), 16)
    except ValueError as exc:
        raise ProtocolError(f"bad chunk size line {line[:40]!r}") from exc
