"""How the CLI words a backend the controller says is not running (pure: no I/O)."""

import pytest

from beephost_cli.commands._down import not_running
from beephost_client.controller import Backend

HINT = (
    "its output: `beep-host logs b-1`; start another: "
    "`beep-host start http --venv data`"
)


def backend(status: str, reason: str | None = None, **fields: object) -> Backend:
    return Backend(
        id="b-1",
        environment="data",
        type="http",
        status=status,
        reason=reason,
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("status", ["ready", "starting"])
def test_a_backend_that_may_answer_is_tried(status: str) -> None:
    assert not_running(backend(status, "restarting")) is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            backend("stopped", "idle", idle_timeout=3600.0),
            "backend b-1 is stopped: idle for 3600 s",
        ),
        (
            backend("stopped", "expired", ttl=600.0),
            "backend b-1 is stopped: its lifetime (ttl 600 s) ended",
        ),
        (
            backend("stopped", "controller shut down"),
            "backend b-1 is stopped: the controller shut down",
        ),
        (backend("stopped", "stopping"), "backend b-1 is stopped"),
        (
            backend("exited", "crashed", restarts=3, exit_code=1),
            "backend b-1 exited after 3 restarts (crashed)",
        ),
        (
            backend("exited", "oom_killed", restarts=1, exit_code=137),
            "backend b-1 exited after 1 restart (killed: out of memory)",
        ),
        (backend("exited", "crashed"), "backend b-1 exited (crashed)"),
        (
            backend("exited", "stopped", exit_code=0),
            "backend b-1 exited: its server stopped (exit code 0)",
        ),
        (backend("exited", "missing"), "backend b-1 exited: its container is gone"),
        (
            backend("exited", "failed: no such image"),
            "backend b-1 failed to start: no such image",
        ),
        (backend("unhealthy"), "backend b-1 is unhealthy: its health check fails"),
    ],
)
def test_a_backend_that_cannot_answer_is_explained(row: Backend, message: str) -> None:
    failure = not_running(row)
    assert failure is not None
    assert (failure.message, failure.hint) == (message, HINT)
