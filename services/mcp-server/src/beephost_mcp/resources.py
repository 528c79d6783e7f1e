"""The workspace's files as MCP resources: ``workspace://{path}``, read from the
session's sandbox (the backend checks the path stays in the workspace too)."""

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.types import CallToolResult

from beephost_client import BeepHostError, NotFound
from beephost_mcp.sessions import Sandboxes
from beephost_mcp.settings import Settings
from beephost_mcp.tools import KeyOf

TEMPLATE = "workspace://{+path}"


def register(
    server: MCPServer[Any], sandboxes: Sandboxes, settings: Settings, key_of: KeyOf
) -> None:
    """Add the workspace resource template to ``server``."""

    @server.resource(
        TEMPLATE,
        name="workspace-file",
        title="A file of the sandbox's workspace",
        description="A file the code wrote or the user uploaded, by its path in the workspace.",
    )
    async def workspace_file(path: str, ctx: Context) -> str | bytes:
        key = key_of(ctx)
        if isinstance(key, CallToolResult):
            raise ResourceError("workspace resources need an MCP session")
        try:
            async with sandboxes.using(key) as sandbox:
                info = await sandbox.client.files.stat(path)
                if info.type != "file":
                    raise ResourceNotFoundError(f"{path} is a {info.type}, not a file")
                if info.size > settings.max_read_bytes:
                    raise ResourceError(
                        f"{path} has {info.size:,} bytes, over the {settings.max_read_bytes:,} a read returns"
                    )
                data = await sandbox.client.files.read(path)
        except NotFound as exc:
            raise ResourceNotFoundError(f"no file {path} in the workspace") from exc
        except BeepHostError as exc:
            raise ResourceError(f"{exc.code}: {exc.message}") from exc
        try:
            return data.decode()
        except UnicodeDecodeError:
            return data
