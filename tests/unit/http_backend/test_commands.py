"""Request bodies to commands: the decoding the routes and the fast lane share."""

import math

import pytest

from beephost_http_backend.commands import eval_command, exec_command, parse_deadline
from beephost_http_backend.schemas import ExecRequest
from beephost_protocol.models import Evaluate, Execute


def test_eval_body_is_the_command() -> None:
    body = Evaluate(expression="1")
    assert eval_command(body, None) is body
    assert eval_command(body, 2.5).timeout == 2.5


def test_the_body_timeout_wins_over_the_header() -> None:
    body = Evaluate(expression="1", timeout=9)
    assert eval_command(body, 2.5).timeout == 9
    assert exec_command(ExecRequest(code="x", timeout=9), 2.5).timeout == 9


def test_exec_command() -> None:
    command = exec_command(ExecRequest(code="x", session="s-1"), 3, stream=True)
    assert command == Execute(code="x", session="s-1", timeout=3, stream=True)
    assert exec_command(ExecRequest(code="x"), None) == Execute(code="x")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"1", 1.0),
        (b" 2.5 ", 2.5),
        (b"1e2", 100.0),
        (b"0", None),
        (b"-1", None),
        (b"nan", None),
        (b"inf", None),
        (b"soon", None),
        (b"", None),
    ],
)
def test_parse_deadline(raw: bytes, expected: float | None) -> None:
    value = parse_deadline(raw)
    assert value == expected
    assert value is None or math.isfinite(value)
