"""The CLI's pure output logic: JSON conversion, cells, ages, error hints, the
transfer bar."""

import io
import json
import math
from typing import TYPE_CHECKING

import pytest

import beephost_client as bc
from beephost_cli.errors import hint_for, message_of
from beephost_cli.output import TransferProgress, age, cell, duration, jsonable
from beephost_client.controller import Backend, Limits
from beephost_protocol import ObjectRelease

if TYPE_CHECKING:
    from rich.console import Console


def test_jsonable_keeps_what_json_cannot_say() -> None:
    assert jsonable((1, [2], {"a": b"\x00"})) == [1, [2], {"a": {"$bytes": "AA=="}}]
    assert jsonable({1: math.nan}) == {"$map": [[1, {"$float": "nan"}]]}
    assert jsonable(-math.inf) == {"$float": "-inf"}
    backend = jsonable(Backend("b", limits=Limits(memory_mb=64)))
    assert backend["limits"] == {"memory_mb": 64, "cpus": None, "pids": None}
    assert backend["token"] is None


def test_values_of_the_value_table_print_as_json() -> None:
    # Every tagged value prints as its wire form, but a set (a JSON list).
    tagged = [
        {"$complex": [1.0, {"$float": "inf"}]},
        {"$decimal": "1.10"},
        {"$datetime": "2024-05-17T12:30:00+02:00"},
        {"$date": "2024-05-17"},
        {"$time": "08:00:00"},
        {"$timedelta": [1, 2, 3]},
        {"$uuid": "00000000-0000-0000-0000-000000000001"},
        {"$path": "/a"},
    ]

    def handler(command: object) -> dict[str, object]:
        return {"value": [{"$set": [1]}, *tagged]}

    with bc.Client(transport=bc.MockTransport(handler)) as client:
        printed = json.loads(json.dumps(jsonable(client.evaluate("x"))))
    assert printed == [[1], *tagged]


def test_remote_objects_become_handles() -> None:
    def handler(command: object) -> dict[str, object]:
        if isinstance(command, ObjectRelease):
            return {"released": 1}
        return {
            "value": {"$handle": {"id": "h1", "type": "Counter", "repr": "Counter()"}}
        }

    with bc.Client(transport=bc.MockTransport(handler)) as client:
        value = client.evaluate("x")
        assert jsonable([value]) == [
            {"$handle": {"id": "h1", "type": "Counter", "repr": "Counter()"}}
        ]
        client.release(value)


def test_cells_and_ages() -> None:
    assert [cell(None), cell(True), cell(3), cell(["a", 1])] == [
        "",
        "yes",
        "3",
        '["a", 1]',
    ]
    assert cell({"k": "v"}) == '{"k": "v"}'
    assert [age(None), age(0.0)] == ["", ""]
    assert [age(100.0, now=105.0), age(0.5, now=3600.5), age(1.0, now=200000.0)] == [
        "5s",
        "1h",
        "2d",
    ]
    assert [duration(59.9), duration(82800.0), duration(-3.0)] == ["59s", "23h", "0s"]


@pytest.mark.parametrize(
    ("error", "target", "hint"),
    [
        (bc.ConnectError("refused"), "controller", "is the controller running?"),
        (bc.ConnectError("refused"), "backend", "is the backend running?"),
        (bc.Unauthorized("no"), "controller", "pass the controller's token"),
        (bc.Unauthorized("no"), "backend", "pass the backend's token"),
        (bc.ConnectionLost("reset"), "controller", "the connection broke"),
        (
            bc.ExecutionTimeout("t", {"job": "j"}),
            "controller",
            "`beep-host jobs wait j`",
        ),
        (
            bc.ExecutionTimeout("t", {"backend": "b"}),
            "controller",
            "`beep-host logs b`",
        ),
        (bc.ExecutionTimeout("t"), "backend", "pass a longer --timeout"),
        (bc.Conflict("c", {"environment": "e"}), "controller", "venv status e"),
        (bc.NotFound("n", {"route": "GET /x"}), "controller", "upgrade the controller"),
        (bc.NotFound("n", {"backend": "b"}), "controller", "`beep-host status`"),
        (bc.InvalidRequest("bad"), "controller", "check the arguments"),
        (bc.Unavailable("busy"), "controller", "try again in a moment"),
        (bc.InternalError("bug"), "controller", "a bug on the server side"),
    ],
)
def test_hints(error: bc.BeepHostError, target: str, hint: str) -> None:
    assert hint in (hint_for(error, target) or "")


def test_no_hint_where_there_is_nothing_to_add() -> None:
    failed = bc.ExecutionFailed("boom", {"type": "ValueError"})
    assert hint_for(failed) is None
    assert message_of(failed) == "ValueError: boom"
    assert message_of(
        bc.ExecutionFailed("ValueError: boom", {"type": "ValueError"})
    ) == ("ValueError: boom")
    assert hint_for(bc.NotFound("n")) is None
    assert hint_for(bc.BeepHostError("new")) is None


def _console(terminal: bool) -> tuple["Console", io.StringIO]:
    from rich.console import Console

    sink = io.StringIO()
    return Console(file=sink, force_terminal=terminal, width=100), sink


def test_a_big_transfer_on_a_terminal_draws_a_bar() -> None:
    console, sink = _console(terminal=True)
    total = TransferProgress.SHOWN_FROM * 2
    with TransferProgress(console, "uploading", total) as bar:
        bar.advance(total // 2, "data/big.bin")
        bar.advance(total // 2, "data/big.bin")
    drawn = sink.getvalue()
    assert "uploading data/big.bin" in drawn
    assert "16.0/16.0 MiB" in drawn


@pytest.mark.parametrize(
    ("terminal", "total"),
    [(True, TransferProgress.SHOWN_FROM - 1), (False, TransferProgress.SHOWN_FROM * 4)],
)
def test_small_or_piped_transfers_draw_nothing(terminal: bool, total: int) -> None:
    console, sink = _console(terminal)
    with TransferProgress(console, "uploading", total) as bar:
        bar.advance(total, "a.bin")
    assert sink.getvalue() == ""
