"""ControllerClient over the controller's Unix socket (as admin backends reach it).

A real controller app on uvicorn listening on a Unix socket in a thread, real SQLite;
images from the in-memory builder, containers from the in-memory engine.
"""

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

import beephost_client as bc
from beephost_cli.main import app as cli_app
from beephost_client.controller import AsyncControllerClient, ControllerClient
from beephost_controller.app import create_app
from beephost_controller.settings import Settings
from beephost_controller.testing import MemoryContainers, MemoryImageBuilder
from tests.integration.cli.support import TOKEN, fake_resolver
from tests.integration.serving import served


@dataclass
class UnixController:
    path: Path

    @property
    def url(self) -> str:
        return f"unix://{self.path}"


@pytest.fixture
def unix_controller(tmp_path: Path, short_tmp: Path) -> Iterator[UnixController]:
    settings = Settings(
        database=tmp_path / "controller.db",
        socket_root=short_tmp / "sockets",
        token=SecretStr(TOKEN),
        pythons=["3.11", "3.13"],
    )
    app = create_app(
        settings,
        builder=MemoryImageBuilder(step_seconds=0),
        resolver=fake_resolver,
        containers=MemoryContainers(),
    )
    path = short_tmp / "api.sock"
    with served(app, uds=str(path)):
        yield UnixController(path)


def test_lists_and_manages_environments_over_the_socket(
    unix_controller: UnixController,
) -> None:
    with ControllerClient(unix_controller.url, token=TOKEN, timeout=10) as client:
        assert client.health() == {"status": "ok"}
        assert client.environments() == []
        env = client.create_environment("data", requirements=["six"])
        assert env.job_id is not None
        lines: list[str] = []
        job = client.wait_job(env.job_id, on_log=lambda line: lines.append(line.line))
        assert job.succeeded, job.error
        assert lines[-1] == "environment data ready"  # the log stream, chunked
        assert [e.name for e in client.environments()] == ["data"]
        # 204 without a body: the pooled keep-alive connection serves the next call.
        client.delete_environment("data")
        assert client.environments() == []


def test_the_socket_needs_the_token(unix_controller: UnixController) -> None:
    for token in (None, "wrong"):
        client = ControllerClient(unix_controller.url, token=token, timeout=10)
        with client, pytest.raises(bc.Unauthorized):
            client.environments()


def test_url_and_token_come_from_the_environment(
    unix_controller: UnixController, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEEPHOST_CONTROLLER_URL", unix_controller.url)
    monkeypatch.setenv("BEEPHOST_CONTROLLER_TOKEN", TOKEN)
    with ControllerClient(timeout=10) as client:
        assert client.url == unix_controller.url
        assert client.environments() == []
    # Explicit arguments win over the variables.
    client = ControllerClient(unix_controller.url, token="wrong", timeout=10)
    with client, pytest.raises(bc.Unauthorized):
        client.environments()
    client = ControllerClient(f"unix://{unix_controller.path}.missing")
    with client, pytest.raises(bc.ConnectError):
        client.environments()


def test_a_missing_socket_is_a_connect_error(short_tmp: Path) -> None:
    url = f"unix://{short_tmp}/api.sock"
    client = ControllerClient(url, token=TOKEN, timeout=5)
    with (
        client,
        pytest.raises(bc.ConnectError, match="cannot connect to unix://") as info,
    ):
        client.environments()
    assert info.value.data == {"url": url}
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_a_socket_nobody_listens_on_is_a_connect_error(short_tmp: Path) -> None:
    path = short_tmp / "api.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # the file exists; nobody accepts on it
    try:
        client = ControllerClient(f"unix://{path}", token=TOKEN, timeout=5)
        with client, pytest.raises(bc.ConnectError) as info:
            client.health()
        assert isinstance(info.value.__cause__, ConnectionRefusedError)
    finally:
        stale.close()


def test_the_cli_accepts_a_unix_controller_url(
    unix_controller: UnixController,
) -> None:
    result = CliRunner().invoke(
        cli_app,
        ["--controller", unix_controller.url, "--json", "venv", "list"],
        env={"BEEPHOST_TOKEN": TOKEN, "BEEPHOST_CONTROLLER_URL": None},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


@pytest.mark.anyio
async def test_the_async_client_over_the_socket(
    unix_controller: UnixController,
) -> None:
    url = unix_controller.url
    async with AsyncControllerClient(url, token=TOKEN, timeout=10) as client:
        assert await client.environments() == []
        env = await client.create_environment("data", requirements=["six"])
        assert env.job_id is not None
        assert (await client.wait_job(env.job_id)).succeeded
        await client.delete_environment("data")
        assert await client.environments() == []
    async with AsyncControllerClient(url, token="wrong", timeout=10) as client:
        with pytest.raises(bc.Unauthorized):
            await client.environments()
    async with AsyncControllerClient(f"{url}.missing") as client:
        with pytest.raises(bc.ConnectError, match="missing"):
            await client.environments()
