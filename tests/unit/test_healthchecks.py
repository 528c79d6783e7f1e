"""Every backend's health check: it reads the settings its server reads, without
Settings (pydantic), and prints the idle seconds its server reports."""

from pathlib import Path
from types import ModuleType

import pytest

from beephost_http_backend import healthcheck as http_check
from beephost_http_backend.settings import Settings as HttpSettings
from beephost_pipe_backend import healthcheck as pipe_check
from beephost_rpc_backend import healthcheck as rpc_check
from beephost_rpc_backend.settings import Settings as RpcSettings

CHECKS = {
    "BEEPHOST_PIPE_BACKEND_": pipe_check,
    "BEEPHOST_HTTP_BACKEND_": http_check,
    "BEEPHOST_RPC_BACKEND_": rpc_check,
}


@pytest.mark.parametrize(
    ("module", "settings", "default_port"),
    [(http_check, HttpSettings, 5678), (rpc_check, RpcSettings, 50051)],
    ids=["http", "rpc"],
)
def test_the_target_is_where_settings_listen(
    module: ModuleType,
    settings: type[HttpSettings | RpcSettings],
    default_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fields = settings.model_fields
    assert fields["host"].default == module.DEFAULT_HOST
    assert fields["port"].default == module.DEFAULT_PORT
    prefix = settings.model_config["env_prefix"]
    assert prefix == module.ENV_PREFIX
    assert module.target({}) == ("127.0.0.1", default_port)
    # Settings match variable names case-insensitively; the probe does too.
    environ = {f"{prefix}HOST": "0.0.0.0", f"{prefix.lower()}port": "81"}
    assert module.target(environ) == ("0.0.0.0", 81)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    listening = settings(allow_unauthenticated=True)
    assert (listening.host, listening.port) == ("0.0.0.0", 81)


@pytest.mark.parametrize(("prefix", "module"), CHECKS.items(), ids=list(CHECKS))
def test_the_idle_note_reads_the_activity_file(
    prefix: str, module: ModuleType, tmp_path: Path
) -> None:
    report = tmp_path / "activity"
    report.write_text("42\n")
    assert module.idle_note({f"{prefix}ACTIVITY_FILE": str(report)}) == " idle=42"
    # Settings read names case-insensitively; the probe does too.
    assert module.idle_note({f"{prefix.lower()}activity_file": str(report)}) == (
        " idle=42"
    )
    assert module.idle_note({}) == ""
    report.write_text("soon")
    assert module.idle_note({f"{prefix}ACTIVITY_FILE": str(report)}) == ""
    report.unlink()
    assert module.idle_note({f"{prefix}ACTIVITY_FILE": str(report)}) == ""
