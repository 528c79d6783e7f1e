"""Every backend's health check prints the idle seconds its server reports."""

from pathlib import Path
from types import ModuleType

import pytest

from beephost_http_backend import healthcheck as http_check
from beephost_pipe_backend import healthcheck as pipe_check
from beephost_rpc_backend import healthcheck as rpc_check

CHECKS = {
    "BEEPHOST_PIPE_BACKEND_": pipe_check,
    "BEEPHOST_HTTP_BACKEND_": http_check,
    "BEEPHOST_RPC_BACKEND_": rpc_check,
}


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
