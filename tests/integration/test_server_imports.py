"""The backend servers stay light: no pydantic-settings in their processes (issue 14).

It cost each idle server megabytes and a tenth of a second of start-up; their settings
are beephost_core.envsettings. Fresh interpreters: this test's own process has imported
the controller, which keeps pydantic-settings.
"""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "settings"),
    [
        ("beephost_core.settings", "beephost_core.settings.BackendSettings"),
        ("beephost_pipe_backend.server", "beephost_pipe_backend.settings.Settings"),
        ("beephost_http_backend.server", "beephost_http_backend.settings.Settings"),
        ("beephost_rpc_backend.server", "beephost_rpc_backend.settings.Settings"),
    ],
)
def test_a_server_does_not_import_pydantic_settings(module: str, settings: str) -> None:
    settings_module = settings.rpartition(".")[0]
    code = (
        f"import sys, {module}, {settings_module}; {settings}(); "
        "assert 'pydantic_settings' not in sys.modules, 'pydantic_settings imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
