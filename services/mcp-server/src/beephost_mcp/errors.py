"""One table from the SDK's errors to what a model can act on: a stable code, the
message, and a hint of what to do next. Sans-I/O."""

from typing import Any

from beephost_client import (
    BeepHostError,
    ConnectError,
    ExecutionFailed,
    ExecutionTimeout,
    Interrupted,
    InvalidArgument,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    SessionLost,
    TooLarge,
    Unauthorized,
    Unavailable,
)

#: Most specific first: the first class an error is an instance of picks the row.
_TABLE: tuple[tuple[type[BeepHostError], str, str], ...] = (
    (
        ExecutionFailed,
        "python_error",
        "the code raised: fix it and run again; variables defined before the error are kept",
    ),
    (
        ExecutionTimeout,
        "timeout",
        "the run passed its deadline: make it faster, or pass a longer timeout",
    ),
    (
        Interrupted,
        "interrupted",
        "the run was interrupted; the interpreter and its variables are kept",
    ),
    (
        SessionLost,
        "interpreter_lost",
        "the interpreter died (out of memory, a crash): variables are gone, files are kept",
    ),
    (NotFound, "not_found", "check the path with list_files"),
    (TooLarge, "too_large", "the data is over a size limit: send or read less"),
    (QuotaExceeded, "quota_exceeded", "the workspace is full: remove files first"),
    (InvalidArgument, "invalid_argument", "fix the arguments and call again"),
    (InvalidRequest, "invalid_argument", "fix the arguments and call again"),
    (
        Unauthorized,
        "sandbox_unavailable",
        "the sandbox refused this server's credentials: tell the user",
    ),
    (
        ConnectError,
        "sandbox_unavailable",
        "the sandbox cannot be reached: try again later",
    ),
    (Unavailable, "sandbox_unavailable", "the sandbox is unavailable: try again later"),
)


def tool_error(code: str, message: str, hint: str = "", **data: Any) -> dict[str, Any]:
    """A failure as the tools report it (structured content ``error``)."""
    error: dict[str, Any] = {"code": code, "message": message, "hint": hint}
    if data:
        error["data"] = data
    return error


def from_exception(exc: BeepHostError) -> dict[str, Any]:
    """The tool error of an SDK error, by the table; the base class is ``internal``."""
    code, hint = next(
        ((code, hint) for kind, code, hint in _TABLE if isinstance(exc, kind)),
        ("internal", "an unexpected failure of the sandbox: try again"),
    )
    if isinstance(exc, ExecutionFailed):
        # The worker's traceback shows only the user's frames.
        message = exc.remote_traceback or exc.message
        return tool_error(code, message.rstrip("\n"), hint, type=exc.remote_type)
    if isinstance(exc, NotFound) and "environment" in exc.data:
        # The server's own environment, not the model's path: nothing it can fix.
        return tool_error(
            "sandbox_unavailable",
            exc.message,
            "this server's environment does not exist on the controller: tell the user",
        )
    if isinstance(exc, ExecutionTimeout):
        lost = bool(exc.data.get("state_lost"))
        if lost:
            hint = (
                "the run passed its deadline and the interpreter was restarted to stop "
                "it: variables are gone, files are kept"
            )
        return tool_error(code, exc.message, hint, state_lost=lost)
    return tool_error(code, exc.message, hint)
