"""The cut policy every transport applies to long error text (beephost_protocol.cuts)."""

import json

import pytest

from beephost_protocol.cuts import cut_middle, cut_traceback, escaped_size
from beephost_protocol.errors import (
    MAX_ARG_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_TRACEBACK_BYTES,
    ExecutionFailed,
)


def _escaped(text: str) -> int:
    return len(json.dumps(text)) - 2


@pytest.mark.parametrize(
    "text", ["a" * 5000, "é" * 5000, "\U0001f600" * 900, "\ud800" * 700]
)
def test_cut_middle_keeps_both_ends_within_the_budget(text: str) -> None:
    cut = cut_middle(text, 512)
    assert _escaped(cut) <= 512
    assert escaped_size(cut) == _escaped(cut)
    head, marker, tail = cut.partition("[... ")
    assert marker
    assert head
    assert tail
    assert text.startswith(head)
    assert text.endswith(tail.split(" characters cut ...]", 1)[1])
    assert cut_middle(text, 512) == cut  # deterministic


def test_short_text_is_untouched() -> None:
    assert cut_middle("short", 512) == "short"
    assert (
        cut_traceback("Traceback\nValueError: x\n", 512) == "Traceback\nValueError: x\n"
    )


def _frame(file: str, line: int, source: str) -> str:
    return f'  File "{file}", line {line}, in f\n    {source}\n'


def test_a_traceback_keeps_user_frames_and_drops_library_frames_in_the_middle() -> None:
    traceback = (
        "Traceback (most recent call last):\n"
        + _frame("<beephost-3>", 1, "run()")
        + "".join(_frame("/usr/lib/python3/lib.py", i, "step()") for i in range(200))
        + _frame("<beephost-3>", 9, "raise ValueError('x')")
        + "".join(_frame("/usr/lib/python3/other.py", i, "more()") for i in range(50))
        + "ValueError: x\n"
    )
    cut = cut_traceback(traceback, 2048)
    assert _escaped(cut) <= 2048
    assert cut.startswith(
        "Traceback (most recent call last):\n" + _frame("<beephost-3>", 1, "run()")
    )
    assert _frame("<beephost-3>", 9, "raise ValueError('x')") in cut
    assert cut.endswith("ValueError: x\n")
    assert "library frames cut ...]\n" in cut
    # The frames kept next to the user's are whole frames, in their order.
    assert _frame("/usr/lib/python3/lib.py", 0, "step()") in cut


def test_an_error_is_cut_the_same_for_every_transport() -> None:
    error = ExecutionFailed(
        "ValueError: " + "m" * 5000,
        {
            "type": "T" * 400,
            "module": "builtins",
            "args": ["m" * 5000, 3],
            "traceback": "Traceback (most recent call last):\n" + "x" * 20000 + "\n",
            "stdout": "o" * 100_000,
        },
    )
    wire = error.to_wire()
    assert _escaped(wire["message"]) <= MAX_MESSAGE_BYTES
    assert _escaped(wire["data"]["traceback"]) <= MAX_TRACEBACK_BYTES
    assert _escaped(wire["data"]["args"][0]) <= MAX_ARG_BYTES
    assert wire["data"]["args"][1] == 3
    assert wire["data"]["type"] == "T" * 400
    assert wire["data"]["stdout"] == "o" * 100_000  # only gRPC cuts output, to fit
    assert error.data["args"][0] == "m" * 5000  # the error itself is unchanged
    assert wire == error.to_wire()
