"""The server's factories: ``create_server(settings)`` (the MCP server, its tools and
resources, and its sandboxes in its lifespan) and ``create_app`` for streamable HTTP."""

import contextlib
import logging
from collections.abc import AsyncIterator, Hashable
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from beephost_client import AsyncControllerClient, Timeout
from beephost_mcp import resources, tools
from beephost_mcp.auth import StaticTokenVerifier, auth_settings
from beephost_mcp.errors import tool_error
from beephost_mcp.handshake import HandshakeOnly
from beephost_mcp.sandbox import FixedBackend, PooledBackends, Provision, SandboxSource
from beephost_mcp.sessions import Sandboxes
from beephost_mcp.settings import HEALTH_PATH, Settings, is_loopback
from beephost_mcp.shaping import error_result

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
A Python sandbox of your own for this conversation: run_python runs code and keeps its
variables between calls, files live in a workspace (write_file, read_file, list_files,
remove_file; also resources workspace://PATH), install_packages adds packages from
PyPI, reset starts over, interrupt stops a long run. Plots come back as images."""

SESSION_HEADER = "mcp-session-id"
#: The key of stdio's one session: a stdio server has exactly one client.
STDIO = "stdio"


def _source(settings: Settings) -> SandboxSource:
    # The backend's deadline is the tool's; the client waits that long plus its grace.
    timeout = Timeout(request=settings.max_timeout, connect=10.0, grace=10.0)
    if settings.backend_url is not None:
        token = (
            settings.backend_token.get_secret_value()
            if settings.backend_token
            else None
        )
        return FixedBackend(settings.backend_url, token, timeout)
    assert settings.environment is not None  # the settings' validator says so
    token = (
        settings.controller_token.get_secret_value()
        if settings.controller_token
        else None
    )
    controller = AsyncControllerClient(
        settings.controller_url,
        token=token,
        timeout=Timeout(request=60.0, connect=10.0),
    )
    return PooledBackends(
        controller,
        settings.environment,
        settings.backend_type,
        idle_timeout=settings.idle_timeout,
        install_timeout=settings.install_timeout,
        timeout=timeout,
        provision=Provision(
            create=settings.create_environment,
            requirements=tuple(settings.environment_requirements),
            egress=settings.environment_egress,
            pool_size=settings.pool_size,
            build_timeout=settings.build_timeout,
        ),
    )


def session_key(settings: Settings) -> tools.KeyOf:
    """How a request finds its MCP session: stdio has one; over HTTP each session has
    the id the SDK gave it (the ``Mcp-Session-Id`` header of every request after
    ``initialize``)."""

    def key_of(ctx: Context) -> Hashable | CallToolResult:
        if settings.transport == "stdio":
            return STDIO
        request = ctx.request_context.request
        session_id = (
            request.headers.get(SESSION_HEADER) if request is not None else None
        )
        if not session_id:
            return error_result(
                tool_error(
                    "no_session",
                    "this server keeps a sandbox per MCP session, and this request has none",
                    "connect with a client that opens a session (the initialize handshake)",
                )
            )
        return str(session_id)

    return key_of


class EndSessions:
    """ASGI middleware: a session the client ended (a ``DELETE`` the SDK accepted)
    releases its sandbox at once; sessions that just go quiet are released by
    ``Sandboxes``' idle timeout, the same as the SDK's."""

    def __init__(self, app: ASGIApp, sandboxes: Sandboxes) -> None:
        self._app, self._sandboxes = app, sandboxes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "DELETE":
            await self._app(scope, receive, send)
            return
        session_id = Headers(scope=scope).get(SESSION_HEADER)
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self._app(scope, receive, watch)
        # Only the session's own principal can end it: the SDK answers others 404.
        if session_id and 200 <= status < 300:
            self._sandboxes.end_soon(session_id)


def create_server(
    settings: Settings, sandboxes: Sandboxes | None = None
) -> MCPServer[Any]:
    """The MCP server with its tools; its lifespan holds the sandboxes (all released
    when it ends)."""
    if sandboxes is None:  # (an empty Sandboxes is falsy: it has a length)
        sandboxes = Sandboxes(_source(settings), settings.idle_timeout)

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[Sandboxes]:
        async with sandboxes:
            yield sandboxes

    auth: dict[str, Any] = {}
    if settings.transport == "http" and settings.token is not None:
        auth = {
            "token_verifier": StaticTokenVerifier(settings.token.get_secret_value()),
            "auth": auth_settings(f"http://{settings.host}:{settings.port}"),
        }
    server: MCPServer[Any] = MCPServer(
        "beephost",
        title="Beep Python Host",
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="WARNING",
        middleware=[HandshakeOnly()] if settings.transport == "http" else [],
        **auth,
    )
    key_of = session_key(settings)
    tools.register(server, sandboxes, settings, key_of)
    resources.register(server, sandboxes, settings, key_of)
    return server


def create_app(settings: Settings) -> Starlette:
    """The streamable HTTP app (bearer token checked unless allowed otherwise)."""
    sandboxes = Sandboxes(_source(settings), settings.idle_timeout)
    server = create_server(settings, sandboxes)

    # Live while the process serves. Not ready-gated on the controller: a server that
    # stays up answers a model with a typed sandbox_unavailable, where a pod taken out
    # of its Service would only refuse connections.
    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "sandboxes": len(sandboxes)})

    server.custom_route(HEALTH_PATH, methods=["GET"], include_in_schema=False)(health)

    security = None
    if not is_loopback(settings.host):
        # The SDK's DNS-rebinding guard is for loopback servers; elsewhere the token
        # guards it, and the Host header is whatever the deployment's name is.
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = server.streamable_http_app(
        streamable_http_path=settings.path,
        session_idle_timeout=settings.idle_timeout,
        max_sessions=settings.max_sessions,
        transport_security=security,
        host=settings.host,
    )
    app.add_middleware(EndSessions, sandboxes=sandboxes)
    return app
