"""WORKER_ENV_FILE: more of user code's environment from a file (a Kubernetes Secret
mounted as one), so that a credential stays out of the pod's spec."""

import json
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from beephost_core.settings import BackendSettings
from beephost_http_backend.settings import Settings as HTTPSettings

CREDENTIAL = "http://b-1:s3cret-token@10.96.0.9:3128"


def test_the_file_adds_to_worker_env_and_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = tmp_path / "worker-env.json"
    held.write_text(json.dumps({"HTTPS_PROXY": CREDENTIAL, "LANG": "C.UTF-8"}))
    monkeypatch.setenv("BEEPHOST_HTTP_BACKEND_WORKER_ENV", json.dumps({"LANG": "x"}))
    monkeypatch.setenv("BEEPHOST_HTTP_BACKEND_WORKER_ENV_FILE", str(held))
    settings = HTTPSettings(token=SecretStr("t"))
    assert settings.worker_env == {"HTTPS_PROXY": CREDENTIAL, "LANG": "C.UTF-8"}
    assert settings.executor_config().extra_env["HTTPS_PROXY"] == CREDENTIAL


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot be read"),
        ("{not json", "does not hold JSON"),
        (json.dumps(["HTTPS_PROXY"]), "JSON object of strings"),
        (json.dumps({"HTTPS_PROXY": 1}), "JSON object of strings"),
        (json.dumps({"BAD NAME": "v"}), "not an environment variable name"),
        (json.dumps({"BEEPHOST_HTTP_BACKEND_TOKEN": "v"}), "backend setting"),
    ],
    ids=["missing", "not-json", "a-list", "not-a-string", "bad-name", "a-setting"],
)
def test_a_bad_file_is_refused_without_quoting_it(
    tmp_path: Path, content: str | None, message: str
) -> None:
    held = tmp_path / "worker-env.json"
    if content is not None:
        held.write_text(content.replace('"v"', '"' + CREDENTIAL + '"'))
    with pytest.raises(ValidationError, match=message) as caught:
        BackendSettings(worker_env_file=held)
    assert CREDENTIAL not in str(caught.value)
