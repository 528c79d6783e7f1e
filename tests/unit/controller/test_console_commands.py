"""Every ``beep-host`` command a console page suggests is one the CLI has, with the
options it names: a hint that names a command that is not there sends a newcomer
nowhere."""

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from beephost_cli.main import app

TEMPLATES = (
    Path(__file__).resolve().parents[3]
    / "services/controller/src/beephost_controller/console/templates"
)
HINT = re.compile(r"<code>beep-host ([^<]+)</code>")


def _hints() -> list[str]:
    return sorted(
        {
            hint
            for path in TEMPLATES.rglob("*.html")
            for hint in HINT.findall(path.read_text())
        }
    )


def test_the_templates_suggest_commands() -> None:
    assert len(_hints()) >= 3


@pytest.mark.parametrize("hint", _hints())
def test_a_suggested_command_exists_with_its_options(hint: str) -> None:
    # Typer carries a click of its own: groups are told by their commands.
    command: Any = typer.main.get_command(app)
    words = hint.split()
    while words and hasattr(command, "commands"):
        found = command.commands.get(words[0])
        assert found is not None, f"beep-host has no command {words[0]!r} ({hint})"
        command, words = found, words[1:]
    known = {opt for param in command.params for opt in getattr(param, "opts", [])}
    for word in words:
        if word.startswith("--"):
            assert word in known, f"{hint}: {word} is not an option of its command"
