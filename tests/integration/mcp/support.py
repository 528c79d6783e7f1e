"""Drive ``beephost-mcp`` with the MCP SDK's own client: over stdio (a child process)
or over streamable HTTP; and what the tests read from tool results."""

import base64
import contextlib
import struct
import sys
import zlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ImageContent, TextContent

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Code that shows a real PNG without matplotlib: an object whose _repr_png_ is a
#: 2x2 image built with zlib, as IPython's display protocol would show it.
PNG_CODE = """
import struct, zlib
def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
class Picture:
    def _repr_png_(self):
        raw = b"".join(b"\\x00" + b"\\xff\\x00\\x00" * 2 for _ in range(2))
        header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
        return (b"\\x89PNG\\r\\n\\x1a\\n" + _chunk(b"IHDR", header)
                + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))
display(Picture())
print("shown")
"""


def tiny_png() -> bytes:
    """A valid 1x1 PNG, made here."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\xff"))
        + chunk(b"IEND", b"")
    )


def text_of(result: CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent))


def images_of(result: CallToolResult) -> list[bytes]:
    return [
        base64.b64decode(b.data) for b in result.content if isinstance(b, ImageContent)
    ]


def error_code(result: CallToolResult) -> str | None:
    """The typed error's code, or None for a success."""
    if not result.is_error:
        return None
    assert result.structured_content is not None, text_of(result)
    code: str = result.structured_content["error"]["code"]
    return code


def read_log(path: Path) -> str:
    """What the server wrote to its log file."""
    return path.read_text()


def structured(result: CallToolResult) -> dict[str, Any]:
    content: dict[str, Any] | None = result.structured_content
    assert content is not None, text_of(result)
    return content


@contextlib.asynccontextmanager
async def stdio_session(
    env: Mapping[str, str], errlog: Path
) -> AsyncIterator[ClientSession]:
    """An initialized MCP session with ``python -m beephost_mcp`` over stdio, its
    settings in ``env`` and its stderr (its log) written to ``errlog``."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "beephost_mcp"], env=dict(env)
    )
    with errlog.open("a") as log:
        async with (
            stdio_client(params, errlog=log) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


@contextlib.asynccontextmanager
async def http_session(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    """An initialized MCP session with the server at ``url`` over streamable HTTP."""
    import httpx2

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(120.0)) as http,
        streamable_http_client(url, http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session
