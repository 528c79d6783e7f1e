"""The tools a model calls, each with a schema from its signature, a description
written for a model, and failures as error results (``structuredContent.error``)."""

import asyncio
import base64
import binascii
import mimetypes
from collections.abc import Awaitable, Callable, Hashable
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import (
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    TextContent,
    ToolAnnotations,
)
from pydantic import Field

from beephost_client import BeepHostError, Output, OutputChunk
from beephost_mcp.errors import from_exception, tool_error
from beephost_mcp.sandbox import InstallFailed, Sandbox
from beephost_mcp.sessions import Sandboxes
from beephost_mcp.settings import Settings
from beephost_mcp.shaping import RunOutcome, cut_middle, error_result, shape_run

#: The session a tool call belongs to: its key in ``Sandboxes``, or an error result.
KeyOf = Callable[[Context], Hashable | CallToolResult]

_IMAGES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
#: How often a long run's progress notifications go out at most (seconds).
_PROGRESS_EVERY = 0.25

Path = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        description="A path in the workspace, relative to it (e.g. 'data/input.csv').",
    ),
]


def ok(text: str, **structured: Any) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=structured
    )


def _with_notice(result: CallToolResult, sandbox: Sandbox) -> CallToolResult:
    """The sandbox's one-time notice (why its state is new) before the result."""
    notice, sandbox.notice = sandbox.notice, None
    if notice is not None:
        result.content.insert(0, TextContent(type="text", text=f"[note: {notice}]"))
        if result.structured_content is not None:
            result.structured_content["notice"] = notice
    return result


def register(
    server: MCPServer[Any], sandboxes: Sandboxes, settings: Settings, key_of: KeyOf
) -> None:
    """Add the tools to ``server``; each finds its session's sandbox by ``key_of``."""

    async def in_session(
        ctx: Context, action: Callable[[Hashable], Awaitable[CallToolResult]]
    ) -> CallToolResult:
        """``action`` with the call's session key; its SDK errors as tool errors."""
        key = key_of(ctx)
        if isinstance(key, CallToolResult):
            return key
        try:
            return await action(key)
        except BeepHostError as exc:
            return error_result(from_exception(exc))

    async def in_sandbox(
        ctx: Context, action: Callable[[Sandbox], Awaitable[CallToolResult]]
    ) -> CallToolResult:
        """``action`` in the session's sandbox (claimed at its first call)."""

        async def using(key: Hashable) -> CallToolResult:
            async with sandboxes.using(key) as sandbox:
                return _with_notice(await action(sandbox), sandbox)

        return await in_session(ctx, using)

    @server.tool(
        annotations=ToolAnnotations(
            title="Run Python", destructive_hint=False, open_world_hint=False
        ),
        structured_output=False,
    )
    async def run_python(
        code: Annotated[
            str, Field(min_length=1, description="Python statements to run.")
        ],
        ctx: Context,
        timeout: Annotated[  # noqa: ASYNC109 - the tool's argument, named for the model
            float | None,
            Field(
                gt=0,
                le=settings.max_timeout,
                description=f"Seconds the run may take (default {settings.default_timeout:g}).",
            ),
        ] = None,
    ) -> CallToolResult:
        """Run Python code in a persistent sandbox, like a notebook cell.

        Variables, imports and functions stay defined across calls. The value of a
        trailing expression is returned as the result. stdout and stderr are
        captured; matplotlib figures (plt.show() or left open) and other images
        come back as images, pandas DataFrames as an HTML table plus their text.
        Files are read and written relative to the workspace (the working
        directory). The sandbox has no network: use install_packages to add a
        package. A failure returns the traceback of your code only.
        """

        async def run(sandbox: Sandbox) -> CallToolResult:
            async with sandbox.running:
                return await run_alone(sandbox)

        async def run_alone(sandbox: Sandbox) -> CallToolResult:
            interpreter = await sandbox.interpreter()
            outcome = RunOutcome()
            parts: dict[str, list[str]] = {"stdout": [], "stderr": []}
            chunks, last_progress = 0, 0.0
            try:
                async with interpreter.stream(
                    code, timeout=timeout or settings.default_timeout
                ) as events:
                    async for item in events:
                        if isinstance(item, OutputChunk):
                            parts[item.stream].append(item.data)
                            chunks += 1
                            now = asyncio.get_running_loop().time()
                            if now - last_progress >= _PROGRESS_EVERY:
                                last_progress = now
                                tail = item.data.strip()[-200:]
                                await ctx.report_progress(chunks, message=tail or None)
                        elif isinstance(item, Output):
                            outcome.outputs.append(item)
                outcome.result = events.result
                outcome.outputs = list(events.result.outputs)
                error = None
            except BeepHostError as exc:
                error = from_exception(exc)
            except BaseException:
                # Cancelled (an MCP cancellation, the session closing): stop the code
                # rather than let it run to its deadline.
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await sandbox.interrupt()
                raise
            outcome.stdout = "".join(parts["stdout"])
            outcome.stderr = "".join(parts["stderr"])
            return shape_run(outcome, settings, error)

        return await in_sandbox(ctx, run)

    @server.tool(
        annotations=ToolAnnotations(title="Install packages", open_world_hint=True),
        structured_output=False,
    )
    async def install_packages(
        packages: Annotated[
            list[Annotated[str, Field(min_length=1, max_length=200)]],
            Field(
                min_length=1,
                max_length=32,
                description="PEP 508 requirements, e.g. ['tabulate', 'rich>=13'].",
            ),
        ],
        ctx: Context,
    ) -> CallToolResult:
        """Install Python packages from PyPI into this sandbox.

        The sandbox stays offline: the packages are resolved and fetched outside it,
        keeping every package already installed at its version. They can be imported
        right away; variables are kept. A conflict or an unknown package fails with
        the resolver's explanation.
        """

        async def install(sandbox: Sandbox) -> CallToolResult:
            try:
                installed = await sandboxes.source.install(sandbox, list(packages))
            except InstallFailed as exc:
                words, _ = cut_middle(
                    str(exc), settings.max_output_chars, "the resolver's output"
                )
                return error_result(
                    tool_error(
                        "install_failed",
                        words,
                        "nothing was installed: fix the requirement (name, version) or "
                        "choose another package",
                    )
                )
            return ok(
                f"installed: {', '.join(packages)}; import them in run_python",
                requested=list(packages),
                installed=installed,
            )

        return await in_sandbox(ctx, install)

    @server.tool(
        annotations=ToolAnnotations(title="Write a file"), structured_output=False
    )
    async def write_file(
        path: Path,
        content: Annotated[
            str,
            Field(description="The file's content: text, or base64 for binary data."),
        ],
        ctx: Context,
        encoding: Annotated[
            Literal["text", "base64"], Field(description="How content is given.")
        ] = "text",
    ) -> CallToolResult:
        """Write a file into the sandbox's workspace (made whole or not at all;
        missing directories are made; an existing file is replaced). Code in
        run_python opens it by the same relative path."""
        if encoding == "base64":
            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                return error_result(
                    tool_error(
                        "invalid_argument",
                        "content is not valid base64",
                        "encode the bytes as base64, or use encoding='text'",
                    )
                )
        else:
            data = content.encode()

        async def write(sandbox: Sandbox) -> CallToolResult:
            info = await sandbox.client.files.write(path, data)
            return ok(
                f"wrote {info.path} ({info.size} bytes)", path=info.path, size=info.size
            )

        return await in_sandbox(ctx, write)

    @server.tool(
        annotations=ToolAnnotations(title="Read a file", read_only_hint=True),
        structured_output=False,
    )
    async def read_file(path: Path, ctx: Context) -> CallToolResult:
        """Read a file of the sandbox's workspace: text comes back as text (very long
        text cut in the middle), images as images, other binary files as a resource."""

        async def read(sandbox: Sandbox) -> CallToolResult:
            info = await sandbox.client.files.stat(path)
            if info.type != "file":
                return error_result(
                    tool_error(
                        "invalid_argument",
                        f"{path} is a {info.type}, not a file",
                        "use list_files for directories",
                    )
                )
            if info.size > settings.max_read_bytes:
                return error_result(
                    tool_error(
                        "too_large",
                        f"{path} has {info.size:,} bytes; read_file returns at most {settings.max_read_bytes:,}",
                        "read a part of it with run_python instead",
                        size=info.size,
                    )
                )
            data = await sandbox.client.files.read(path)
            return file_content(info.path, data, settings.max_output_chars)

        return await in_sandbox(ctx, read)

    @server.tool(
        annotations=ToolAnnotations(title="List files", read_only_hint=True),
        structured_output=False,
    )
    async def list_files(
        ctx: Context,
        path: Annotated[
            str,
            Field(
                min_length=1,
                max_length=4096,
                description="A directory of the workspace.",
            ),
        ] = ".",
    ) -> CallToolResult:
        """List a directory of the sandbox's workspace: names, types and sizes."""

        async def listing(sandbox: Sandbox) -> CallToolResult:
            entries = await sandbox.client.files.list(path)
            rows = [{"path": e.path, "type": e.type, "size": e.size} for e in entries]
            lines = [
                f"{e.path}{'/' if e.type == 'directory' else ''}  {e.size if e.type == 'file' else ''}".rstrip()
                for e in entries
            ]
            return ok("\n".join(lines) or "(empty)", entries=rows)

        return await in_sandbox(ctx, listing)

    @server.tool(
        annotations=ToolAnnotations(title="Remove a file", destructive_hint=True),
        structured_output=False,
    )
    async def remove_file(
        path: Path,
        ctx: Context,
        recursive: Annotated[
            bool, Field(description="Remove a directory and everything in it.")
        ] = False,
    ) -> CallToolResult:
        """Remove a file (or, with recursive, a directory) from the workspace."""

        async def remove(sandbox: Sandbox) -> CallToolResult:
            count = await sandbox.client.files.remove(path, recursive=recursive)
            return ok(
                f"removed {count} entr{'y' if count == 1 else 'ies'}", removed=count
            )

        return await in_sandbox(ctx, remove)

    @server.tool(
        annotations=ToolAnnotations(title="Reset the sandbox", destructive_hint=True),
        structured_output=False,
    )
    async def reset(
        ctx: Context,
        new_sandbox: Annotated[
            bool,
            Field(
                description="False: a fresh interpreter, files kept. True: a whole new sandbox (files and installed packages gone too)."
            ),
        ] = False,
    ) -> CallToolResult:
        """Start over: by default a fresh Python interpreter (every variable and
        import gone, files in the workspace kept); with new_sandbox, a new sandbox."""
        if new_sandbox:
            if not sandboxes.source.replaceable:
                return error_result(
                    tool_error(
                        "invalid_argument",
                        "this server uses one fixed backend: it cannot make a new sandbox",
                        "call reset without new_sandbox for a fresh interpreter",
                    )
                )

            async def replace(key: Hashable) -> CallToolResult:
                await sandboxes.replace(key)
                return ok(
                    "a new sandbox: variables, files and installed packages are gone",
                    reset="sandbox",
                )

            return await in_session(ctx, replace)

        async def restart(sandbox: Sandbox) -> CallToolResult:
            await sandbox.restart_interpreter()
            return ok(
                "a fresh interpreter: variables are gone, workspace files are kept",
                reset="interpreter",
            )

        return await in_sandbox(ctx, restart)

    @server.tool(
        annotations=ToolAnnotations(title="Interrupt", idempotent_hint=True),
        structured_output=False,
    )
    async def interrupt(ctx: Context) -> CallToolResult:
        """Interrupt the code run_python is running in this session (it raises
        KeyboardInterrupt there; variables are kept)."""

        async def signal(key: Hashable) -> CallToolResult:
            # The session's sandbox if it has one: interrupting claims none.
            sandbox = sandboxes.peek(key)
            signalled = sandbox is not None and await sandbox.interrupt()
            return ok(
                "interrupted" if signalled else "nothing was running",
                interrupted=signalled,
            )

        return await in_session(ctx, signal)


def file_content(path: str, data: bytes, max_chars: int) -> CallToolResult:
    """A file's bytes as a model reads them: image, text, or a binary resource."""
    mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
    structured: dict[str, Any] = {"path": path, "size": len(data), "mime_type": mime}
    if mime in _IMAGES:
        image = ImageContent(
            type="image", data=base64.b64encode(data).decode("ascii"), mime_type=mime
        )
        return CallToolResult(content=[image], structured_content=structured)
    try:
        text = data.decode()
    except UnicodeDecodeError:
        blob = EmbeddedResource(
            type="resource",
            resource=BlobResourceContents(
                uri=f"workspace://{path}",
                mime_type=mime,
                blob=base64.b64encode(data).decode("ascii"),
            ),
        )
        note = TextContent(
            type="text", text=f"{path}: {len(data):,} bytes of binary data ({mime})"
        )
        return CallToolResult(content=[note, blob], structured_content=structured)
    shown, cut = cut_middle(text, max_chars, path)
    structured["truncated"] = cut
    return CallToolResult(
        content=[TextContent(type="text", text=shown)], structured_content=structured
    )
