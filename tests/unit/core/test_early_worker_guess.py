"""What an early worker is launched with, guessed from the environment before the
settings are validated: the launch the validated settings give, or no guess."""

import json
import os
from pathlib import Path

import pytest

from beephost_core.early_worker import guessed_config
from beephost_core.envsettings import EnvConfigDict
from beephost_core.launch import Launch
from beephost_core.settings import BackendSettings

PREFIX = "BEEPHOST_EARLY_TEST_"


class _Settings(BackendSettings):
    model_config = EnvConfigDict(env_prefix=PREFIX, extra="ignore")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.upper().startswith(PREFIX):
            monkeypatch.delenv(name)
    root = tmp_path / "workspace"
    monkeypatch.setenv(f"{PREFIX}WORKSPACE_DIR", str(root))
    (tmp_path / "env.json").write_text(json.dumps({"A": "2", "B": "3"}))
    return root


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"PYTHON": "/opt/env/bin/python", "WORKER_CWD": "/", "PACKAGES_DIR": "/p"},
        {"worker_env": json.dumps({"A": "1", "HOME": "/elsewhere"})},
        {"WORKER_ENV": json.dumps({"A": "1"}), "WORKER_ENV_FILE": "{tmp}/env.json"},
        {"WORKER_CWD": "", "PACKAGES_DIR": ""},
    ],
)
def test_the_guess_launches_as_the_validated_settings_do(
    workspace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(f"{PREFIX}{name}", value.replace("{tmp}", str(tmp_path)))
    guessed = guessed_config(PREFIX, os.environ)
    assert guessed is not None
    validated = _Settings().executor_config().in_workspace(str(workspace))
    assert Launch.of(guessed) == Launch.of(validated)


def test_the_guess_reads_names_as_the_settings_do(workspace: Path) -> None:
    guessed = guessed_config(
        PREFIX,
        {
            f"{PREFIX}WORKSPACE_DIR": str(workspace),
            f"{PREFIX.lower()}worker_env": json.dumps({"A": "1"}),
        },
    )
    assert guessed is not None
    assert guessed.extra_env == {"HOME": str(workspace), "A": "1"}
    assert guessed.cwd == str(workspace)


@pytest.mark.parametrize(
    "variables",
    [
        {"WORKSPACE_DIR": ""},  # the executor makes a temporary workspace
        {"WORKER_ENV": "{not json"},
        {"WORKER_ENV": json.dumps(["A"])},
        {"WORKER_ENV": json.dumps({"A": 1})},
        {"WORKER_ENV": json.dumps({"BEEPHOST_PIPE_BACKEND_TOKEN": "x" * 32})},
        {"WORKER_ENV": json.dumps({"NOT A NAME": "1"})},
        {"WORKER_ENV_FILE": "/nonexistent/env.json"},
    ],
)
def test_no_guess_where_the_settings_cannot_be_told_or_refuse(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(f"{PREFIX}{name}", value)
    assert guessed_config(PREFIX, os.environ) is None


def test_no_guess_without_a_workspace(monkeypatch: pytest.MonkeyPatch) -> None:
    assert guessed_config(PREFIX, {f"{PREFIX}PYTHON": "/usr/bin/python3"}) is None
