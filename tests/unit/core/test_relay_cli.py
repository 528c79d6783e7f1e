"""The relay's command line: ``PORT SOCKET``, a usage error for anything else."""

import pytest

from beephost_core import relay


@pytest.mark.parametrize(
    "argv", [[], ["5678"], ["http", "/run/s.sock"], ["1", "2", "3"]]
)
def test_a_wrong_command_line_is_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        relay.main(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith(
        "usage: python -m beephost_core.relay PORT SOCKET\n"
    )
