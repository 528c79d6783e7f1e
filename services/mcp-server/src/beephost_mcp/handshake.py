"""Streamable HTTP clients connect in the protocol's handshake era, where sessions exist.

A sandbox belongs to an MCP session, and over HTTP only the ``initialize`` handshake
opens one: a 2026-07-28 request is stateless (no ``Mcp-Session-Id``), so each would be
a stranger. mcp 2.x clients (``mcp.client.Client``, the OpenAI Agents SDK, FastMCP and
so pydantic-ai) probe ``server/discover`` first and fall back to ``initialize`` when
the probe is refused; so this server refuses it, and any other request of that era,
with -32022 naming the versions it speaks. Over HTTP the era is chosen per request, so
the fallback works. Not over stdio: there the first request fixes the connection's
era before any middleware runs, and stdio needs no session id (one client, one
sandbox), so both eras are served there.
"""

from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import UNSUPPORTED_PROTOCOL_VERSION
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

DISCOVER = "server/discover"


class HandshakeOnly:
    """Server middleware: the handshake era only (see the module's docstring)."""

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method == DISCOVER or ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            raise MCPError(
                UNSUPPORTED_PROTOCOL_VERSION,
                "this server keeps a sandbox per MCP session: connect with the "
                "initialize handshake",
                {
                    "supported": list(HANDSHAKE_PROTOCOL_VERSIONS),
                    "requested": ctx.protocol_version,
                },
            )
        return await call_next(ctx)
