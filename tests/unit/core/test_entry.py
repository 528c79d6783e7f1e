"""The backends' command line: one optional word, parsed without argparse."""

import pytest

from beephost_core.entry import subcommand

PROG = "beephost-pipe-backend"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [([], "serve"), (["serve"], "serve"), (["healthcheck"], "healthcheck")],
)
def test_the_subcommand_is_read(argv: list[str], expected: str) -> None:
    assert subcommand(PROG, argv) == expected


def test_the_process_arguments_are_read_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.argv", [PROG, "healthcheck"])
    assert subcommand(PROG, None) == "healthcheck"


@pytest.mark.parametrize(
    "argv", [["check"], ["serve", "healthcheck"], ["--port", "1"], [""]]
)
def test_anything_else_is_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        subcommand(PROG, argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {PROG} [-h] [{{serve,healthcheck}}]\n"), err
    assert "error: expected serve or healthcheck" in err


def test_help_prints_the_usage_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        subcommand(PROG, ["--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {PROG} ")
