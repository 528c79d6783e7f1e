"""BackendSettings.worker_env: read as JSON under each backend's prefix, names checked."""

import json

import pytest
from pydantic import ValidationError

from beephost_core.settings import BackendSettings
from beephost_http_backend.settings import Settings as HTTPSettings
from beephost_pipe_backend.settings import Settings as PipeSettings
from beephost_rpc_backend.settings import Settings as RPCSettings

CONTROLLER_ENV = {
    "BEEPHOST_CONTROLLER_URL": "unix:///run/beephost-controller/api.sock",
    "BEEPHOST_CONTROLLER_TOKEN": "scoped-token",
}


def test_empty_by_default() -> None:
    settings = BackendSettings()
    assert settings.worker_env == {}
    assert settings.executor_config().extra_env == {}


@pytest.mark.parametrize(
    ("settings_class", "variable"),
    [
        (PipeSettings, "BEEPHOST_PIPE_BACKEND_WORKER_ENV"),
        (HTTPSettings, "BEEPHOST_HTTP_BACKEND_WORKER_ENV"),
        (RPCSettings, "BEEPHOST_RPC_BACKEND_WORKER_ENV"),
    ],
)
def test_read_as_json_under_the_backend_prefix(
    settings_class: type[BackendSettings],
    variable: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(variable, json.dumps(CONTROLLER_ENV))
    settings = settings_class()
    assert settings.worker_env == CONTROLLER_ENV
    config = settings.executor_config()
    assert config.extra_env == CONTROLLER_ENV
    worker_env = config.worker_env()
    assert worker_env["BEEPHOST_CONTROLLER_TOKEN"] == "scoped-token"
    assert "PATH" in worker_env  # the minimal environment, updated, not replaced


def test_extra_variables_win_over_the_minimal_environment() -> None:
    config = BackendSettings(worker_env={"TZ": "UTC", "X": "1"}).executor_config()
    assert config.worker_env()["TZ"] == "UTC"
    assert config.worker_env()["X"] == "1"


def test_not_json_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEEPHOST_PIPE_BACKEND_WORKER_ENV", "X=1")
    with pytest.raises(ValidationError, match="BEEPHOST_PIPE_BACKEND_WORKER_ENV"):
        PipeSettings()


def test_values_must_be_strings() -> None:
    with pytest.raises(ValidationError):
        BackendSettings(worker_env={"X": 1})  # type: ignore[dict-item]


@pytest.mark.parametrize("name", ["", "1X", "A-B", "A B", "A=B", "é"])
def test_refuses_bad_names(name: str) -> None:
    with pytest.raises(ValidationError, match="not an environment variable name"):
        BackendSettings(worker_env={name: "v"})


@pytest.mark.parametrize(
    "name",
    [
        "BEEPHOST_PIPE_BACKEND_TOKEN",
        "BEEPHOST_HTTP_BACKEND_TOKEN",
        "BEEPHOST_RPC_BACKEND_PYTHON",
        "beephost_pipe_backend_token",  # settings are read case-insensitively
    ],
)
def test_refuses_the_backends_own_settings(name: str) -> None:
    with pytest.raises(ValidationError, match="is a backend setting"):
        BackendSettings(worker_env={name: "v"})


def test_other_beephost_names_are_allowed() -> None:
    assert BackendSettings(worker_env=CONTROLLER_ENV).worker_env == CONTROLLER_ENV
