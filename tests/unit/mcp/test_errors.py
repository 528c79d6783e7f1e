"""The SDK's errors as typed tool errors a model can act on."""

import pytest

from beephost_client import (
    BeepHostError,
    ConnectError,
    ExecutionFailed,
    ExecutionTimeout,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    SessionLost,
    Unauthorized,
)
from beephost_mcp.errors import from_exception


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound("no such file"), "not_found"),
        (
            NotFound("no environment 'charts'", {"environment": "charts"}),
            "sandbox_unavailable",
        ),
        (InvalidRequest("path escapes the workspace"), "invalid_argument"),
        (QuotaExceeded("full"), "quota_exceeded"),
        (SessionLost("worker died"), "interpreter_lost"),
        (Unauthorized("bad token"), "sandbox_unavailable"),
        (ConnectError("refused"), "sandbox_unavailable"),
        (BeepHostError("something new"), "internal"),
    ],
)
def test_each_error_has_its_code_and_a_hint(error: BeepHostError, code: str) -> None:
    mapped = from_exception(error)
    assert mapped["code"] == code
    assert mapped["message"] == error.message
    assert mapped["hint"]


def test_a_python_error_gives_the_traceback_and_the_type() -> None:
    tb = 'Traceback (most recent call last):\n  File "<beephost-1>", line 1\nZeroDivisionError: division by zero\n'
    mapped = from_exception(
        ExecutionFailed(
            "division by zero", {"type": "ZeroDivisionError", "traceback": tb}
        )
    )
    assert mapped["message"] == tb.rstrip("\n")
    assert mapped["data"] == {"type": "ZeroDivisionError"}


def test_a_timeout_says_whether_the_state_was_lost() -> None:
    kept = from_exception(ExecutionTimeout("deadline", {"state_lost": False}))
    lost = from_exception(ExecutionTimeout("deadline", {"state_lost": True}))
    assert kept["data"] == {"state_lost": False}
    assert "variables are gone" in lost["hint"]
    assert "variables are gone" not in kept["hint"]
