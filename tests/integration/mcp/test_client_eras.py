"""mcp 2.x clients, which open with the 2026-07-28 ``server/discover`` probe: over
streamable HTTP the server refuses that stateless era, so they fall back to the
``initialize`` handshake and get a session (and a sandbox of their own); a client pinned
to the new era is refused with -32022. Over stdio both eras are served: the SDK's
``Client`` keeps state across calls there in whichever its probe chose.

The HTTP server's sandboxes come from a controller nobody listens for, so a call with a
session reaches the sandbox step (``sandbox_unavailable``), where one without a
session stops at ``no_session``: the difference is the session."""

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import UNSUPPORTED_PROTOCOL_VERSION

from tests.e2e.mcp_server import TOKEN, HttpServer, http_server, pooled_env
from tests.integration.mcp.support import error_code, structured, text_of
from tests.ports import free_port

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    settings = pooled_env(
        f"http://127.0.0.1:{free_port()}", "controller-T0ken-0", "mcp"
    )
    log = tmp_path_factory.mktemp("mcp-eras") / "mcp.log"
    with http_server(settings, log) as running:
        yield running


@contextlib.asynccontextmanager
async def _client(url: str, mode: str = "auto") -> AsyncIterator[Client]:
    """The SDK's high-level client over streamable HTTP (``mode``: its negotiation)."""
    async with (
        httpx2.AsyncClient(headers=AUTH, timeout=httpx2.Timeout(60.0)) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


def _leaves(error: BaseException) -> list[BaseException]:
    """The exceptions in ``error``, out of the task groups' exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


async def test_the_sdks_client_falls_back_to_a_session_over_http(
    server: HttpServer,
) -> None:
    async with _client(server.url) as client:
        tools = await client.list_tools()
        result = await client.call_tool("run_python", {"code": "1 + 1"})
        opened = client.session.initialize_result
    assert len(tools.tools) == 8
    assert opened is not None  # the handshake, not the stateless era
    assert error_code(result) == "sandbox_unavailable", text_of(result)


async def test_a_client_pinned_to_the_stateless_era_is_refused(
    server: HttpServer,
) -> None:
    with pytest.raises(BaseException) as raised:  # noqa: PT011 - the task groups wrap it in a group
        async with _client(server.url, mode="2026-07-28") as client:
            await client.list_tools()
    (refused,) = [e for e in _leaves(raised.value) if isinstance(e, MCPError)]
    assert refused.code == UNSUPPORTED_PROTOCOL_VERSION
    assert "2025-11-25" in refused.data["supported"]


async def test_the_openai_agents_sdk_gets_a_session_over_http(
    server: HttpServer,
) -> None:
    from agents.mcp import MCPServerStreamableHttp

    async with MCPServerStreamableHttp(
        name="beephost", params={"url": server.url, "headers": AUTH}
    ) as sandbox:
        tools = await sandbox.list_tools()
        result = await sandbox.call_tool("run_python", {"code": "1 + 1"})
    assert "run_python" in {t.name for t in tools}
    assert error_code(result) == "sandbox_unavailable", text_of(result)


async def test_pydantic_ai_gets_a_session_over_http(server: HttpServer) -> None:
    from pydantic_ai import ModelRetry
    from pydantic_ai.mcp import MCPToolset

    sandbox = MCPToolset(server.url, headers=AUTH)
    async with sandbox:
        tools = await sandbox.list_tools()
        with pytest.raises(ModelRetry) as retry:
            await sandbox.direct_call_tool("run_python", {"code": "1 + 1"})
    assert "run_python" in {t.name for t in tools}
    assert '"code":"sandbox_unavailable"' in str(retry.value)


async def test_the_sdks_client_keeps_state_over_stdio(
    fixed_env: dict[str, str],
) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "beephost_mcp"], env=fixed_env
    )
    async with Client(params) as client:
        await client.call_tool("run_python", {"code": "seen = [1, 2]"})
        result = await client.call_tool("run_python", {"code": "sum(seen)"})
    assert structured(result)["result"] == "3"


async def test_a_cancelled_call_over_stdio_interrupts_the_run(
    fixed_env: dict[str, str],
) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "beephost_mcp"], env=fixed_env
    )
    started = asyncio.Event()

    async def progress(
        progress: float, total: float | None, message: str | None
    ) -> None:
        started.set()

    code = "import time\nprint('go', flush=True)\ntime.sleep(60)\nfinished = True"
    async with Client(params) as client:
        await client.call_tool("run_python", {"code": "before = 3"})
        task = asyncio.create_task(
            client.call_tool("run_python", {"code": code}, progress_callback=progress)
        )
        await asyncio.wait_for(started.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        state = await client.call_tool(
            "run_python", {"code": "(before, 'finished' in globals())"}
        )
    assert structured(state).get("result") == "(3, False)", structured(state)
