"""The MCP server against real backends from a controller's warm pool, driven by the
MCP SDK's own client over streamable HTTP and over stdio: plots as PNG images, state
across calls, install then import, files, a timeout, a cancel, two sessions
isolated, a wrong token refused, a session's sandbox stopped when it ends; and
``beep-host mcp`` (the CLI's stdio server) and docs/users/mcp.md's HTTP snippets
(openai-agents, pydantic-ai) on the same pool.

Each test runs on the module's own controller process and on the compose system's
(``ON_BOTH``). The MCP server itself runs as a process beside the controller.

The last tests bring up a compose system of their own with the ``mcp`` profile
(``COMPOSE_PROFILES=mcp scripts/up``): compose's MCP server, in the controller's image,
answers an MCP client with the token scripts/up generated, refuses a wrong one, runs
code in a sandbox of the environment it created, and is hardened like the others.
"""

import asyncio
import base64
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from beephost_client.controller import Backend, ControllerClient
from beephost_protocol.errors import NotFound
from tests.e2e.compose_system import Compose, compose_system
from tests.e2e.containers import docker
from tests.e2e.controller_process import ON_BOTH, ControllerTarget, build_environment
from tests.e2e.mcp_server import TOKEN, HttpServer, http_server, pooled_env
from tests.integration.mcp.doc import python_blocks, run_block
from tests.integration.mcp.support import (
    PNG_SIGNATURE,
    error_code,
    http_session,
    images_of,
    read_log,
    stdio_session,
    structured,
    text_of,
    tiny_png,
)

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

ENV = "mcp-plots"
PLOT = """
import matplotlib.pyplot as plt
plt.plot([1, 2, 3], [4, 1, 9])
plt.title("three points")
plt.show()
print("plotted")
"""


@pytest.fixture(scope="module")
def environment(api: ControllerClient) -> Iterator[str]:
    """An environment with matplotlib and a warm http pool of 2."""
    build_environment(api, ENV, ["matplotlib==3.11.2"], timeout=900)
    api.set_pool(ENV, "http", 2)
    _wait(lambda: _pool_ready(api) >= 2, "the pool never filled")
    yield ENV
    api.set_pool(ENV, "http", 0)


def _pool_ready(api: ControllerClient) -> int:
    return sum(p.ready for p in api.pools(ENV) if p.type == "http")


def _claimed(api: ControllerClient) -> list[Backend]:
    """The environment's claimed (not pooled) backends that still run."""
    return [
        b
        for b in api.backends()
        if b.environment == ENV and not b.pooled and b.status in ("starting", "ready")
    ]


def _wait(condition: "object", what: str, within: float = 90) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.fixture(scope="module")
def settings(controller_target: ControllerTarget, environment: str) -> dict[str, str]:
    token = controller_target.environ().get("BEEPHOST_CONTROLLER_TOKEN")
    return pooled_env(controller_target.url, token, environment)


@pytest.fixture(scope="module")
def server(
    settings: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HttpServer]:
    with http_server(settings, tmp_path_factory.mktemp("mcp") / "mcp.log") as running:
        yield running


@ON_BOTH
async def test_http_lists_tools_and_a_plot_arrives_as_png(server: HttpServer) -> None:
    async with http_session(server.url, TOKEN) as session:
        tools = {t.name for t in (await session.list_tools()).tools}
        result = await session.call_tool("run_python", {"code": PLOT})
    assert {
        "run_python",
        "install_packages",
        "read_file",
        "reset",
        "interrupt",
    } <= tools
    (png,) = images_of(result)
    assert png.startswith(PNG_SIGNATURE)
    assert "plotted" in text_of(result)


@ON_BOTH
async def test_http_state_is_kept_and_two_sessions_are_isolated(
    server: HttpServer,
) -> None:
    async with (
        http_session(server.url, TOKEN) as one,
        http_session(server.url, TOKEN) as two,
    ):
        await one.call_tool("run_python", {"code": "secret = 'one'"})
        await one.call_tool("write_file", {"path": "mine.txt", "content": "one"})
        same = await one.call_tool("run_python", {"code": "secret"})
        other = await two.call_tool("run_python", {"code": "secret"})
        files = await two.call_tool("list_files", {})
        hosts = [
            structured(
                await s.call_tool(
                    "run_python", {"code": "import socket; socket.gethostname()"}
                )
            )["result"]
            for s in (one, two)
        ]
    assert structured(same)["result"] == "'one'"
    assert error_code(other) == "python_error"
    assert "NameError" in text_of(other)
    assert "mine.txt" not in text_of(files)
    assert hosts[0] != hosts[1]  # two containers, not two sessions of one


@ON_BOTH
async def test_http_install_then_import_and_a_failed_install(
    server: HttpServer,
) -> None:
    async with http_session(server.url, TOKEN) as session:
        installed = await session.call_tool(
            "install_packages", {"packages": ["tabulate"]}
        )
        used = await session.call_tool(
            "run_python", {"code": "import tabulate\ntabulate.tabulate([[1, 2]])"}
        )
        failed = await session.call_tool(
            "install_packages", {"packages": ["beephost-no-such-package-0e1f"]}
        )
    assert error_code(installed) is None, text_of(installed)
    assert "tabulate" in structured(installed)["installed"]
    assert "1  2" in structured(used)["result"]
    assert error_code(failed) == "install_failed"
    assert "beephost-no-such-package-0e1f" in structured(failed)["error"]["message"]


@ON_BOTH
async def test_http_a_timeout_and_a_cancel(server: HttpServer) -> None:
    async with http_session(server.url, TOKEN) as session:
        await session.call_tool("run_python", {"code": "kept = 7"})
        timed_out = await session.call_tool(
            "run_python", {"code": "import time\ntime.sleep(60)", "timeout": 1}
        )
        started = asyncio.Event()

        async def progress(
            progress: float, total: float | None, message: str | None
        ) -> None:
            started.set()

        task = asyncio.create_task(
            session.call_tool(
                "run_python",
                {
                    "code": "import time\nprint('go', flush=True)\ntime.sleep(60)\ndone = 1"
                },
                progress_callback=progress,
            )
        )
        await asyncio.wait_for(started.wait(), 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        after = await session.call_tool("run_python", {"code": "('done' in globals())"})
    assert error_code(timed_out) == "timeout"
    assert structured(after)["result"] == "False"


@ON_BOTH
async def test_http_the_interrupt_tool_stops_a_running_call(server: HttpServer) -> None:
    async with http_session(server.url, TOKEN) as session:
        await session.call_tool("run_python", {"code": "kept = 8"})
        started = asyncio.Event()

        async def progress(
            progress: float, total: float | None, message: str | None
        ) -> None:
            started.set()

        code = "import time\nprint('go', flush=True)\ntime.sleep(60)\ndone = 1"
        task = asyncio.create_task(
            session.call_tool("run_python", {"code": code}, progress_callback=progress)
        )
        await asyncio.wait_for(started.wait(), 60)
        interrupted = await session.call_tool("interrupt", {})
        stopped = await asyncio.wait_for(task, 30)
        after = await session.call_tool(
            "run_python", {"code": "(kept, 'done' in globals())"}
        )
    assert structured(interrupted)["interrupted"] is True
    assert error_code(stopped) in {"interrupted", "python_error"}
    assert structured(after)["result"] == "(8, False)"


@ON_BOTH
async def test_http_a_wrong_or_missing_token_is_refused(server: HttpServer) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with httpx2.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer not-the-token-0123456789"}):
            reply = await http.post(server.url, json=body, headers=headers)
            assert reply.status_code == 401
    with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK's client raises its own
        async with http_session(server.url, "not-the-token-0123456789") as session:
            await session.list_tools()
    assert "not-the-token" not in read_log(server.log)
    assert TOKEN not in read_log(server.log)


@ON_BOTH
async def test_http_a_sessions_sandbox_stops_when_it_ends(
    server: HttpServer, api: ControllerClient
) -> None:
    before = {b.id for b in _claimed(api)}
    async with http_session(server.url, TOKEN) as session:
        await session.call_tool("run_python", {"code": "1"})
        (mine,) = [b for b in _claimed(api) if b.id not in before]
    # Leaving the block ends the session (a DELETE): its backend is stopped.
    _wait(
        lambda: mine.id not in {b.id for b in _claimed(api)}, "the sandbox still runs"
    )
    # Stopped: an explicit stop removes the backend's record (NotFound); one the
    # controller stopped itself keeps it, as stopped or exited.
    try:
        status = api.backend(mine.id).status
    except NotFound:
        return
    assert status in ("stopped", "exited")


@ON_BOTH
async def test_http_files_round_trip_as_text_image_and_resource(
    server: HttpServer,
) -> None:
    png = tiny_png()
    async with http_session(server.url, TOKEN) as session:
        await session.call_tool(
            "write_file", {"path": "out/notes.txt", "content": "a\nb\n"}
        )
        await session.call_tool(
            "write_file",
            {
                "path": "out/dot.png",
                "content": base64.b64encode(png).decode(),
                "encoding": "base64",
            },
        )
        counted = await session.call_tool(
            "run_python", {"code": "len(open('out/notes.txt').read().split())"}
        )
        text = await session.call_tool("read_file", {"path": "out/notes.txt"})
        image = await session.call_tool("read_file", {"path": "out/dot.png"})
        listing = await session.call_tool("list_files", {"path": "out"})
        resource = await session.read_resource("workspace://out/notes.txt")
        removed = await session.call_tool(
            "remove_file", {"path": "out", "recursive": True}
        )
        gone = await session.call_tool("read_file", {"path": "out/notes.txt"})
    assert structured(counted)["result"] == "2"
    assert text_of(text) == "a\nb\n"
    assert images_of(image) == [png]
    assert [e["path"] for e in structured(listing)["entries"]] == [
        "out/dot.png",
        "out/notes.txt",
    ]
    (contents,) = resource.contents
    assert getattr(contents, "text", None) == "a\nb\n"
    assert structured(removed)["removed"] == 3
    assert error_code(gone) == "not_found"


@ON_BOTH
async def test_stdio_a_plot_install_then_import_and_two_servers_isolated(
    settings: dict[str, str], tmp_path: Path
) -> None:
    # Two stdio servers (two desktop clients) on the same pool: a sandbox each.
    async with (
        stdio_session(settings, tmp_path / "one.log") as one,
        stdio_session(settings, tmp_path / "two.log") as two,
    ):
        plot = await one.call_tool("run_python", {"code": PLOT})
        installed = await one.call_tool("install_packages", {"packages": ["tabulate"]})
        used = await one.call_tool(
            "run_python",
            {"code": "import tabulate\nsecret = 'one'\ntabulate.tabulate([[3, 4]])"},
        )
        other = await two.call_tool("run_python", {"code": "secret"})
        hosts = [
            structured(
                await s.call_tool(
                    "run_python", {"code": "import socket; socket.gethostname()"}
                )
            )["result"]
            for s in (one, two)
        ]
    (png,) = images_of(plot)
    assert png.startswith(PNG_SIGNATURE)
    assert error_code(installed) is None, text_of(installed)
    assert "3  4" in structured(used)["result"]
    assert error_code(other) == "python_error"
    assert "NameError" in text_of(other)
    assert hosts[0] != hosts[1]


@ON_BOTH
async def test_stdio_with_a_pool_files_a_new_sandbox_and_the_end(
    settings: dict[str, str], api: ControllerClient, tmp_path: Path
) -> None:
    before = {b.id for b in _claimed(api)}
    async with stdio_session(settings, tmp_path / "stdio.log") as session:
        await session.call_tool(
            "write_file",
            {
                "path": "in.bin",
                "content": base64.b64encode(b"\x00\x01").decode(),
                "encoding": "base64",
            },
        )
        size = await session.call_tool(
            "run_python", {"code": "len(open('in.bin','rb').read())"}
        )
        (first,) = [b for b in _claimed(api) if b.id not in before]
        fresh = await session.call_tool("reset", {"new_sandbox": True})
        gone = await session.call_tool("list_files", {})
        (second,) = [b for b in _claimed(api) if b.id not in before]
    assert structured(size)["result"] == "2"
    assert structured(fresh)["reset"] == "sandbox"
    assert "in.bin" not in text_of(gone)
    assert first.id != second.id
    # The stdio server's end (its input closed) stopped the sandbox it had.
    _wait(lambda: not ({b.id for b in _claimed(api)} - before), "a sandbox still runs")


@ON_BOTH
async def test_beep_host_mcp_serves_a_sandbox_of_the_clis_controller(
    controller_target: ControllerTarget,
    environment: str,
    api: ControllerClient,
    tmp_path: Path,
) -> None:
    # As a desktop client starts it: `beep-host mcp` with the CLI's controller and
    # token; the server is beephost-mcp, a child of the CLI.
    token = controller_target.environ().get("BEEPHOST_CONTROLLER_TOKEN")
    params = StdioServerParameters(
        command=str(Path(sys.executable).parent / "beep-host"),
        args=["--controller", controller_target.url, "mcp", "--venv", environment],
        env={"BEEPHOST_TOKEN": token} if token else {},
    )
    before = {b.id for b in _claimed(api)}
    with (tmp_path / "stdio.log").open("a") as log:
        async with (
            stdio_client(params, errlog=log) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            result = await session.call_tool("run_python", {"code": "sum(range(5))"})
            (mine,) = [b for b in _claimed(api) if b.id not in before]
    assert structured(result)["result"] == "10"
    assert mine.environment == environment
    _wait(lambda: mine.id not in {b.id for b in _claimed(api)}, "a sandbox still runs")


@pytest.mark.parametrize("code", python_blocks("MCP_URL"))
def test_the_doc_http_blocks_run(code: str, server: HttpServer) -> None:
    # docs/users/mcp.md's streamable HTTP snippets (openai-agents, pydantic-ai): they
    # connect, list the tools and run code in a pooled sandbox of their session.
    run_block(code, {"MCP_URL": server.url, "MCP_TOKEN": TOKEN})


# -- compose's mcp service (profile mcp) ------------------------------------------------


@pytest.fixture(scope="module")
def compose_mcp(docker_cli: str) -> Iterator[Compose]:
    """A compose system with the mcp profile, as ``COMPOSE_PROFILES=mcp scripts/up``
    brings it up (healthy: ``--wait`` includes the MCP server); ``down -v`` after."""
    with compose_system("beephost-e2e-mcp", profiles="mcp") as system:
        assert system.url("MCP") in system.up_log, "scripts/up prints where it is"
        yield system


@pytest.fixture(scope="module")
def compose_mcp_ready(compose_mcp: Compose) -> Compose:
    """Once the environment the server creates at start (``mcp``) is built and its
    warm pool has a member: the first call then claims in milliseconds."""
    with ControllerClient(
        compose_mcp.url("CONTROLLER"), token=compose_mcp.tokens["CONTROLLER"]
    ) as api:

        def ready() -> bool:
            envs = {e.name: e.status for e in api.environments()}
            if envs.get("mcp") == "failed":
                raise AssertionError("the MCP server's environment failed to build")
            return envs.get("mcp") == "ready" and any(
                p.ready for p in api.pools("mcp") if p.type == "http"
            )

        _wait(ready, "the MCP server's environment and pool never became ready", 900)
    return compose_mcp


def test_compose_mcp_is_hardened_on_the_hosts_loopback(
    compose_mcp: Compose, docker_cli: str
) -> None:
    (container_id,) = compose_mcp.run("ps", "-q", "mcp").split()
    info = json.loads(docker(docker_cli, "inspect", container_id))[0]
    host = info["HostConfig"]
    assert info["State"]["Health"]["Status"] == "healthy"
    assert host["NetworkMode"] == "host"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert info["Config"]["User"] not in ("", "0", "root")
    assert "docker.sock" not in " ".join(host.get("Binds") or [])
    assert info["Config"]["Labels"]["io.beephost.kind"] == "mcp-server"
    # No anonymous volume (the image's /var/lib/beephost is a tmpfs here).
    assert [m for m in info["Mounts"] if m["Type"] == "volume"] == []
    # Its token is the generated one; it listens on loopback only.
    env = dict(item.partition("=")[::2] for item in info["Config"]["Env"])
    assert env["BEEPHOST_MCP_TOKEN"] == compose_mcp.tokens["MCP"]
    assert env["BEEPHOST_MCP_HOST"] == "127.0.0.1"


async def test_compose_mcp_refuses_a_wrong_or_missing_token(
    compose_mcp: Compose,
) -> None:
    url = compose_mcp.url("MCP")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with httpx2.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer not-the-token-0123456789"}):
            reply = await http.post(url, json=body, headers=headers)
            assert reply.status_code == 401
        health = await http.get(url.removesuffix("/mcp") + "/health")
        assert health.status_code == 200
    with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK's client raises its own
        async with http_session(url, "not-the-token-0123456789") as session:
            await session.list_tools()
    logs = compose_mcp.run("logs", "mcp")
    assert compose_mcp.tokens["MCP"] not in logs
    assert compose_mcp.tokens["CONTROLLER"] not in logs


async def test_compose_mcp_answers_with_its_token_and_runs_python(
    compose_mcp_ready: Compose,
) -> None:
    url, token = compose_mcp_ready.url("MCP"), compose_mcp_ready.tokens["MCP"]
    async with http_session(url, token) as session:
        tools = {t.name for t in (await session.list_tools()).tools}
        first = await session.call_tool("run_python", {"code": "x = 6 * 7\nprint(x)"})
        second = await session.call_tool("run_python", {"code": "x + 1"})
    assert {"run_python", "install_packages", "write_file", "reset"} <= tools
    assert error_code(first) is None, text_of(first)
    assert "42" in text_of(first)
    assert structured(second)["result"] == "43"
