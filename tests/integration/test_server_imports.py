"""The backend servers stay light: no pydantic-settings in their processes (issue 14),
no prometheus_client before a scrape and no importlib.metadata at boot (issue 33).

pydantic-settings cost each idle server megabytes and a tenth of a second of start-up;
their settings are beephost_core.envsettings. prometheus_client cost a cold start ~30
ms; their metrics are beephost_core.tallies until read. importlib.metadata (pydantic's
plugin search, the servers' versions) cost it 25-70 ms; beephost_core.boot does without
it. Fresh interpreters: this test's
own process has imported the controller, which keeps both.
"""

import subprocess
import sys

import pytest

SERVERS = pytest.mark.parametrize(
    ("module", "settings"),
    [
        ("beephost_core.settings", "beephost_core.settings.BackendSettings"),
        ("beephost_pipe_backend.server", "beephost_pipe_backend.settings.Settings"),
        ("beephost_http_backend.server", "beephost_http_backend.settings.Settings"),
        ("beephost_rpc_backend.server", "beephost_rpc_backend.settings.Settings"),
    ],
)


@SERVERS
def test_a_server_imports_neither_pydantic_settings_nor_prometheus_client(
    module: str, settings: str
) -> None:
    settings_module = settings.rpartition(".")[0]
    code = (
        f"import sys, {module}, {settings_module}; {settings}(); "
        "assert 'pydantic_settings' not in sys.modules, 'pydantic_settings imported'; "
        "assert 'prometheus_client' not in sys.modules, 'prometheus_client imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@SERVERS
def test_a_server_boots_without_reading_distribution_metadata(
    module: str, settings: str
) -> None:
    # What each backend's main does before its settings, then what serving imports.
    settings_module = settings.rpartition(".")[0]
    code = (
        "import sys; from beephost_core.boot import without_pydantic_plugins; "
        f"without_pydantic_plugins(); import {module}, {settings_module}; {settings}(); "
        "assert 'importlib.metadata' not in sys.modules, 'importlib.metadata imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_rpc_server_starts_without_its_health_messages() -> None:
    # grpc_health's health_pb2 (~30 ms of a cold start) is imported at the first
    # health call (tests/integration/rpc/test_rpc_health.py), not at boot.
    code = """
import asyncio, sys
from beephost_core import CoreMetrics, Executor
from beephost_rpc_backend.server import create_server
from beephost_rpc_backend.settings import Settings

async def main():
    settings = Settings(host="127.0.0.1", port=0, socket_path=None)
    server, _ = create_server(settings, Executor(settings.executor_config(), CoreMetrics("grpc")))
    await server.start()
    try:
        assert "grpc_health.v1.health_pb2" not in sys.modules, "health_pb2 imported"
    finally:
        await server.grpc.stop(0)

asyncio.run(main())
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
