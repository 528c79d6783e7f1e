"""Errors as the CLI reports them: one ``error:`` line, one ``hint:`` line, exit code 1.

Commands raise :class:`Failure` when they know what to suggest; any other error of
the SDK's taxonomy gets the generic hint :func:`hint_for` picks from its class and data.
"""

from beephost_client import (
    BeepHostError,
    Conflict,
    ConnectError,
    ConnectionLost,
    ExecutionFailed,
    ExecutionTimeout,
    InternalError,
    InvalidRequest,
    NotFound,
    Unauthorized,
    Unavailable,
)

START_CONTROLLER = (
    "is the controller running? start it with `beephost-controller`, or point "
    "--controller (BEEPHOST_CONTROLLER_URL) at it"
)


class Failure(Exception):
    """A failure the command explains itself.

    Args:
        message: What went wrong, one line.
        hint: What to do about it.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def message_of(error: BeepHostError) -> str:
    """The one-line message of an SDK error."""
    if isinstance(error, ExecutionFailed) and error.remote_type:
        text = error.message
        prefix = f"{error.remote_type}:"
        return text if text.startswith(prefix) else f"{prefix} {text}"
    return error.message or type(error).__name__


def hint_for(error: BeepHostError, target: str = "controller") -> str | None:
    """What to suggest for an SDK error nobody caught with a better hint.

    Args:
        error: The error.
        target: What the command was talking to: ``controller`` or ``backend``.
    """
    data = error.data
    to_controller = target == "controller"
    if isinstance(error, ConnectError):
        if to_controller:
            return START_CONTROLLER
        return "is the backend running? `beep-host status` lists the backends"
    if isinstance(error, ConnectionLost):
        return "the connection broke (a restart?): check with `beep-host status` and try again"
    if isinstance(error, Unauthorized):
        if to_controller:
            return "pass the controller's token with --token or BEEPHOST_TOKEN"
        return (
            "pass the backend's token in BEEPHOST_BACKEND_TOKEN or --token-file "
            "(`beep-host connection ID` prints it)"
        )
    if isinstance(error, ExecutionFailed):
        return None  # the remote traceback above says it all
    if isinstance(error, ExecutionTimeout):
        if "job" in data:
            return (
                f"it goes on: follow it with `beep-host jobs wait {data['job']}`, "
                "or pass a longer --timeout"
            )
        if "backend" in data:
            return f"see what it does with `beep-host logs {data['backend']}`"
        return "pass a longer --timeout"
    if isinstance(error, Conflict):
        if "environment" in data:
            return f"`beep-host venv status {data['environment']}` shows it"
        return None
    if isinstance(error, NotFound):
        if "route" in data:  # the controller lacks the route, not the resource
            return "upgrade the controller, or use a client of its version"
        if "environment" in data:
            return "`beep-host venv list` lists the environments"
        if "job" in data:
            return "`beep-host jobs list` lists the jobs"
        if "backend" in data:
            return "`beep-host status` lists the backends"
        return None
    if isinstance(error, InvalidRequest):
        return "check the arguments (--help describes them)"
    if isinstance(error, Unavailable):
        return "the server is starting or shutting down: try again in a moment"
    if isinstance(error, InternalError):
        return "a bug on the server side: its log has the details"
    return None
