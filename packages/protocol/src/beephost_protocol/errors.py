"""The one error taxonomy shared by every transport, the core and the client.

Hierarchy::

    BeepHostError                      code          meaning
    ├── ExecutionFailed                execution_failed  the user's code raised
    ├── ExecutionTimeout               timeout       the deadline passed
    ├── Interrupted                    interrupted   an interrupt request stopped the code
    ├── SessionLost                    session_lost  the worker died; its state is gone
    ├── InvalidRequest                 invalid_request   malformed or unknown request
    │   └── Conflict                   conflict      exists already, or a state forbids it
    ├── NotFound                       not_found     unknown session or handle
    ├── TooLarge                       too_large     request, frame or result over a limit
    ├── QuotaExceeded                  quota_exceeded    too many sessions or handles
    ├── Unauthorized                   unauthorized  missing or wrong token
    ├── Unavailable                    unavailable   cannot serve now (starting, draining)
    └── InternalError                  internal      a bug on our side

On the wire an error is ``{"code", "message", "data"}``. ``data`` is a JSON object; for
``execution_failed`` it carries ``type``, ``module`` and ``traceback`` of the remote
exception. An unknown code decodes to the base :class:`BeepHostError`.
"""

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, ClassVar

from beephost_protocol.cuts import cut_middle, cut_traceback

#: Bounds of an error's text on the wire, in bytes of escaped JSON (``cuts.py``). With
#: ``type`` and ``module`` they fit the gRPC backend's metadata budget together.
MAX_MESSAGE_BYTES = 512
MAX_TRACEBACK_BYTES = 4096
MAX_ARG_BYTES = 96


def _bounded(data: dict[str, Any]) -> dict[str, Any]:
    traceback = data.get("traceback")
    args = data.get("args")
    if not isinstance(traceback, str) and not isinstance(args, list):
        return data
    bounded = dict(data)
    if isinstance(traceback, str):
        bounded["traceback"] = cut_traceback(traceback, MAX_TRACEBACK_BYTES)
    if isinstance(args, list):
        bounded["args"] = [
            cut_middle(arg, MAX_ARG_BYTES) if isinstance(arg, str) else arg
            for arg in args
        ]
    return bounded


class ErrorCode(StrEnum):
    """Machine-readable error codes, identical on every transport."""

    EXECUTION_FAILED = "execution_failed"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    SESSION_LOST = "session_lost"
    INVALID_REQUEST = "invalid_request"
    CONFLICT = "conflict"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    QUOTA_EXCEEDED = "quota_exceeded"
    UNAUTHORIZED = "unauthorized"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class BeepHostError(Exception):
    """Base of every error raised by Beep Python Host libraries.

    Args:
        message: Human-readable description.
        data: JSON-serialisable details (remote traceback, limits, ...).
    """

    code: ClassVar[ErrorCode | None] = None

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data: dict[str, Any] = dict(data or {})

    @property
    def wire_code(self) -> str:
        """The code sent on the wire (``internal`` for the bare base class)."""
        return (self.code or ErrorCode.INTERNAL).value

    def to_wire(self) -> dict[str, Any]:
        """Encode as the transport-neutral ``{code, message, data}`` object.

        Long text is cut here, once for every transport (``cuts.py``): the message, the
        ``traceback`` and string ``args`` in ``data``. ``type`` and ``module`` never are.
        """
        return {
            "code": self.wire_code,
            "message": cut_middle(self.message, MAX_MESSAGE_BYTES),
            "data": _bounded(self.data),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ExecutionFailed(BeepHostError):
    """The user's code raised; ``data`` has ``type``, ``module`` and ``traceback``."""

    code = ErrorCode.EXECUTION_FAILED

    @property
    def remote_type(self) -> str:
        """Qualified name of the remote exception class, e.g. ``ZeroDivisionError``."""
        return str(self.data.get("type", ""))

    @property
    def remote_traceback(self) -> str:
        """The traceback as formatted inside the worker."""
        return str(self.data.get("traceback", ""))


class ExecutionTimeout(BeepHostError):
    """The deadline passed; ``data["state_lost"]`` says whether the worker was killed."""

    code = ErrorCode.TIMEOUT


class Interrupted(BeepHostError):
    """An interrupt request stopped the running code; the session's state is kept."""

    code = ErrorCode.INTERRUPTED


class SessionLost(BeepHostError):
    """The session's worker died (crash, kill, out of memory); its state is gone."""

    code = ErrorCode.SESSION_LOST


class InvalidRequest(BeepHostError):
    """The request is malformed, names an unknown command or has bad parameters."""

    code = ErrorCode.INVALID_REQUEST


class Conflict(InvalidRequest):
    """The resource exists, or exists with another definition, or its state forbids it.

    For example: creating an environment whose name is taken, or deleting one whose
    backends still run. A subclass of :class:`InvalidRequest`, so code that handles
    invalid requests handles conflicts too.
    """

    code = ErrorCode.CONFLICT


class NotFound(BeepHostError):
    """An unknown session, handle or attribute target."""

    code = ErrorCode.NOT_FOUND


class TooLarge(BeepHostError):
    """A request, frame or result exceeds a configured size limit."""

    code = ErrorCode.TOO_LARGE


def declared_body_too_large(
    content_length: bytes | None, limit: int
) -> TooLarge | None:
    """The refusal of a request whose ``Content-Length`` announces over ``limit`` bytes.

    The HTTP services' front middleware (the backend's and the controller's) refuse
    such a request before reading its body; an unparsable length refuses nothing here.

    Args:
        content_length: The raw header value, ``None`` when the request has none.
        limit: The largest body accepted, in bytes.

    Returns:
        ``TooLarge`` carrying ``size`` and ``limit``, or ``None`` to go on.
    """
    if content_length is None:
        return None
    try:
        size = int(content_length)
    except ValueError:
        size = -1
    if size > limit:
        return TooLarge(
            f"request body of {size} bytes exceeds the {limit}-byte limit",
            {"size": size, "limit": limit},
        )
    return None


class QuotaExceeded(BeepHostError):
    """Too many sessions, handles or in-flight requests."""

    code = ErrorCode.QUOTA_EXCEEDED


class Unauthorized(BeepHostError):
    """A token is required and was missing or wrong."""

    code = ErrorCode.UNAUTHORIZED


class Unavailable(BeepHostError):
    """The server cannot serve the request now (starting up, shutting down)."""

    code = ErrorCode.UNAVAILABLE


class InternalError(BeepHostError):
    """A bug on the server side; the message says what failed."""

    code = ErrorCode.INTERNAL


ERROR_CLASSES: dict[ErrorCode, type[BeepHostError]] = {
    cls.code: cls
    for cls in (
        ExecutionFailed,
        ExecutionTimeout,
        Interrupted,
        SessionLost,
        InvalidRequest,
        Conflict,
        NotFound,
        TooLarge,
        QuotaExceeded,
        Unauthorized,
        Unavailable,
        InternalError,
    )
    if cls.code is not None
}


def error_from_wire(payload: dict[str, Any]) -> BeepHostError:
    """Decode a wire ``{code, message, data}`` object into the matching exception.

    Args:
        payload: The ``error`` member of a response.

    Returns:
        An instance of the class registered for ``code``, or the base class for an
        unknown code (forward compatibility).
    """
    message = str(payload.get("message", ""))
    raw_data = payload.get("data")
    data = raw_data if isinstance(raw_data, dict) else {}
    try:
        cls = ERROR_CLASSES[ErrorCode(str(payload.get("code")))]
    except ValueError:
        error = BeepHostError(message, data)
        error.data.setdefault("code", payload.get("code"))
        return error
    return cls(message, data)


def operator_note(error: BeepHostError, session: str | None = None) -> str | None:
    """A line for the server's log when ``error`` means a worker died or was killed.

    Backends log it (WARNING, with the peer) when a request gets such an error: the core
    reports these to the request, not to the log. ``session`` is the request's, for
    errors whose ``data`` does not name it. None for every other error.
    """
    name = error.data.get("session") or session or "default"
    if isinstance(error, SessionLost):
        reason = str(error.data.get("reason") or error.message)
        if reason.startswith("expired"):
            return None  # the core logs the expiry itself
        return f"session {name} lost its worker: {reason}"
    if isinstance(error, ExecutionTimeout) and error.data.get("state_lost"):
        return f"session {name} lost its state at the deadline: {error.message}"
    return None


def validation_summary(errors: Sequence[Mapping[str, Any]], whole: str) -> str:
    """The first five of pydantic's complaints as ``where: what; ...``.

    How a refused request is worded (and, in the client, a refused argument or
    reply), so that the message reads the same wherever it comes from.

    Args:
        errors: pydantic's error details (``ValidationError.errors()``).
        whole: Where a complaint about the value as a whole (an empty ``loc``) is,
            e.g. ``request``.
    """
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or whole}: {error['msg']}"
        for error in errors[:5]
    )


# The one table per transport (docs/protocol/errors.md explains each choice). gRPC codes
# are names of grpc.StatusCode members, so this module stays free of grpc.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.INTERRUPTED: 409,
    ErrorCode.CONFLICT: 409,
    ErrorCode.SESSION_LOST: 410,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.EXECUTION_FAILED: 422,
    ErrorCode.QUOTA_EXCEEDED: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.TIMEOUT: 504,
}

_CODE_BY_STATUS = {status: code for code, status in HTTP_STATUS.items()}


def framework_refusal(
    status: int, detail: str, method: str, path: str
) -> tuple[ErrorCode, str]:
    """The code and message of an HTTP framework's own answer (Starlette's 404, 405...).

    The HTTP services (the backend's and the controller's) give these the one error
    body too: the code is ``HTTP_STATUS`` read backwards (a status without a code of its
    own is ``internal`` from 500 up, ``invalid_request`` below) and the message names
    the path or the method.

    Args:
        status: The framework's HTTP status.
        detail: The framework's own message, kept for the other statuses.
        method: The request's method.
        path: The request's path.
    """
    code = _CODE_BY_STATUS.get(status)
    if code is None:
        code = ErrorCode.INTERNAL if status >= 500 else ErrorCode.INVALID_REQUEST
    if status == 404:
        return code, f"no route {method} {path}"
    if status == 405:
        return code, f"{method} is not allowed on {path}"
    return code, detail


GRPC_STATUS: dict[ErrorCode, str] = {
    ErrorCode.INVALID_REQUEST: "INVALID_ARGUMENT",
    ErrorCode.UNAUTHORIZED: "UNAUTHENTICATED",
    ErrorCode.NOT_FOUND: "NOT_FOUND",
    ErrorCode.CONFLICT: "ALREADY_EXISTS",
    ErrorCode.INTERRUPTED: "CANCELLED",
    ErrorCode.SESSION_LOST: "ABORTED",
    ErrorCode.TOO_LARGE: "RESOURCE_EXHAUSTED",
    ErrorCode.EXECUTION_FAILED: "UNKNOWN",
    ErrorCode.QUOTA_EXCEEDED: "RESOURCE_EXHAUSTED",
    ErrorCode.INTERNAL: "INTERNAL",
    ErrorCode.UNAVAILABLE: "UNAVAILABLE",
    ErrorCode.TIMEOUT: "DEADLINE_EXCEEDED",
}
