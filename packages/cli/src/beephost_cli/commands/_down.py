"""Why a backend the controller knows cannot be reached: said before any connection.

A backend the controller stopped (idle, lifetime over) or that exited for good is
not worth a connection attempt, whose "connection refused" would hide what the
controller recorded. :func:`not_running` words that record from the backend's row:
its status, reason (the controller's, see ``backends/status.py``) and restarts.
"""

from beephost_cli.errors import Failure
from beephost_client.controller import Backend

#: Statuses in which a backend may answer: a client connects (``starting`` waits).
REACHABLE = frozenset({"ready", "starting"})

_EXITS = {"crashed": "crashed", "oom_killed": "killed: out of memory"}


def not_running(backend: Backend) -> Failure | None:
    """The failure to report instead of connecting to ``backend``, or None when its
    status lets a client try."""
    if backend.status in REACHABLE:
        return None
    hint = (
        f"its output: `beep-host logs {backend.id}`; start another: "
        f"`beep-host start {backend.type or 'http'} --venv {backend.environment}`"
    )
    return Failure(f"backend {backend.id} {_state(backend)}", hint)


def _state(backend: Backend) -> str:
    """What follows ``backend ID`` in the message: its status and why."""
    reason = backend.reason or ""
    if backend.status == "stopped":
        return f"is stopped{_stop_cause(backend, reason)}"
    if backend.status == "unhealthy":
        return "is unhealthy: its health check fails"
    if backend.status != "exited":
        return f"is {backend.status}" + (f": {reason}" if reason else "")
    if reason in _EXITS:
        after = f" after {_restarts(backend.restarts)}" if backend.restarts else ""
        return f"exited{after} ({_EXITS[reason]})"
    if reason == "stopped":
        code = (
            f" (exit code {backend.exit_code})" if backend.exit_code is not None else ""
        )
        return f"exited: its server stopped{code}"
    if reason == "missing":
        return "exited: its container is gone"
    if reason.startswith("failed: "):
        return f"failed to start: {reason.removeprefix('failed: ')}"
    return "exited" + (f": {reason}" if reason else "")


def _stop_cause(backend: Backend, reason: str) -> str:
    if reason == "idle":
        limit = backend.idle_timeout
        return f": idle for {limit:g} s" if limit is not None else ": idle"
    if reason == "expired":
        ttl = f" (ttl {backend.ttl:g} s)" if backend.ttl is not None else ""
        return f": its lifetime{ttl} ended"
    if reason == "controller shut down":
        return ": the controller shut down"
    if reason in ("", "stopping"):
        return ""
    return f": {reason}"


def _restarts(count: int) -> str:
    return f"{count} restart" + ("" if count == 1 else "s")
