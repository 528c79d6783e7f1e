"""A real HTTP backend process for the MCP server's fixed-backend mode."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.contract.servers import ServerProcess

BACKEND_TOKEN = "mcp-Backend-T0ken-never-logged"


@pytest.fixture(scope="module")
def backend(
    env_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """An HTTP backend with a token, running the stdlib-only interpreter."""
    server = ServerProcess(
        "http", tmp_path_factory.mktemp("mcp-backend"), env_python, token=BACKEND_TOKEN
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fixed_env(backend: ServerProcess) -> dict[str, str]:
    """The MCP server's settings for the fixed backend, over stdio."""
    return {
        "BEEPHOST_MCP_BACKEND_URL": backend.url,
        "BEEPHOST_MCP_BACKEND_TOKEN": BACKEND_TOKEN,
        "BEEPHOST_MCP_MAX_OUTPUT_CHARS": "2000",
        "BEEPHOST_MCP_MAX_TIMEOUT": "120",
    }


@pytest.fixture
def errlog(tmp_path: Path) -> Path:
    return tmp_path / "mcp-server.log"
