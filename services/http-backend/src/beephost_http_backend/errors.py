"""The one mapping of errors to HTTP responses: ErrorCode -> status via HTTP_STATUS.

Every error the service answers goes through :func:`error_response`, whether it comes
from the core, from request validation, from routing (unknown path or method) or from
the request gate in the middleware.
"""

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Scope

from beephost_http_backend.responses import JSONBytes
from beephost_http_backend.schemas import ErrorResponse
from beephost_protocol import HTTP_STATUS, BeepHostError, ErrorCode
from beephost_protocol.errors import (
    InvalidRequest,
    operator_note,
    validation_summary,
)

logger = logging.getLogger(__name__)

# The scope key under which the error code is left for the access log and metrics.
ERROR_CODE_KEY = "beephost.error_code"


def status_of(error: BeepHostError) -> int:
    return HTTP_STATUS[ErrorCode(error.wire_code)]


def error_headers(error: BeepHostError) -> dict[str, str]:
    if error.wire_code == ErrorCode.UNAUTHORIZED:
        return {"WWW-Authenticate": 'Bearer realm="beephost"'}
    return {}


def error_response(
    error: BeepHostError,
    headers: dict[str, str] | None = None,
    status: int | None = None,
) -> Response:
    return JSONBytes(
        {"error": error.to_wire()},
        status or status_of(error),
        {**error_headers(error), **(headers or {})},
    )


class CarriedError(HTTPException):
    """A BeepHostError raised where FastAPI lets only HTTPException through unchanged.

    FastAPI turns any other exception raised while it reads a body into a 400; the
    middleware's body counter raises this so that an oversized body stays ``too_large``.
    """

    def __init__(self, error: BeepHostError) -> None:
        super().__init__(status_of(error), error.message)
        self.error = error


def _clean(errors: Any) -> list[dict[str, Any]]:
    # Inputs and contexts can hold anything (bytes, exceptions): keep what is JSON.
    return [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": _message(err),
            "type": str(err.get("type", "")),
        }
        for err in errors
    ]


def _message(err: Any) -> str:
    message = str(err.get("msg", ""))
    # FastAPI's "JSON decode error" keeps the reason (e.g. "NaN is not valid JSON")
    # in its context.
    reason = (err.get("ctx") or {}).get("error")
    if err.get("type") == "json_invalid" and isinstance(reason, str) and reason:
        message = f"{message}: {reason}"
    return message


def invalid_request(errors: Any) -> InvalidRequest:
    cleaned = _clean(errors)
    summary = validation_summary(cleaned, "request")
    return InvalidRequest(f"invalid request: {summary}", {"errors": cleaned})


def log_lost_worker(
    scope: Scope, error: BeepHostError, session: str | None = None
) -> None:
    """Log a worker that died or was killed, with the session and the client."""
    note = operator_note(error, session or scope.get("path_params", {}).get("session"))
    if note is not None:
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "unknown"
        logger.warning("%s (%s %s from %s)", note, scope["method"], scope["path"], peer)


_MEANING = {
    ErrorCode.INVALID_REQUEST: "Malformed JSON, a wrong type or a bad parameter.",
    ErrorCode.UNAUTHORIZED: "A token is required and was missing or wrong.",
    ErrorCode.NOT_FOUND: "Unknown session, handle, object.create target or file.",
    ErrorCode.CONFLICT: "The file or directory is in the way (overwrite is false, "
    "or a directory is not empty).",
    ErrorCode.INTERRUPTED: "An interrupt request stopped the code; state is kept.",
    ErrorCode.SESSION_LOST: "The session's worker died; its state is gone.",
    ErrorCode.TOO_LARGE: "The request body or the result is over a size limit.",
    ErrorCode.EXECUTION_FAILED: "The user's code raised; data has type, module, "
    "traceback.",
    ErrorCode.QUOTA_EXCEEDED: "Too many sessions or handles, or the workspace's quota "
    "would be passed.",
    ErrorCode.INTERNAL: "A bug on the server side.",
    ErrorCode.UNAVAILABLE: "The server is draining or no worker could start; the "
    "request did not run.",
    ErrorCode.TIMEOUT: "The deadline passed; data.state_lost says if state survived.",
}

# Every route can get these: the gate answers them before the route runs.
COMMON_ERRORS = (
    ErrorCode.INVALID_REQUEST,
    ErrorCode.UNAUTHORIZED,
    ErrorCode.TOO_LARGE,
    ErrorCode.INTERNAL,
    ErrorCode.UNAVAILABLE,
)
# What any command that runs in a session's worker can end with.
WORKER_ERRORS = (
    ErrorCode.NOT_FOUND,
    ErrorCode.SESSION_LOST,
    ErrorCode.TIMEOUT,
    ErrorCode.INTERRUPTED,
    ErrorCode.EXECUTION_FAILED,
)


def documented(
    *codes: ErrorCode,
    common: tuple[ErrorCode, ...] = COMMON_ERRORS,
    json_body: bool = True,
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the common errors plus ``codes`` (and 415,
    a body that is not JSON, for the ``/api/`` operations: ``json_body``)."""
    wanted = set(common) | set(codes)
    responses: dict[int | str, dict[str, Any]] = {
        HTTP_STATUS[code]: {
            "model": ErrorResponse,
            "description": f"`{code.value}`: {_MEANING[code]}",
        }
        for code in sorted(wanted, key=HTTP_STATUS.__getitem__)
    }
    if not json_body:
        return responses
    # Every API operation refuses a body that is not JSON, before reading it.
    responses[415] = {
        "model": ErrorResponse,
        "description": "`invalid_request`: a body that is not JSON by its Content-Type",
    }
    return dict(sorted(responses.items(), key=lambda item: int(item[0])))
