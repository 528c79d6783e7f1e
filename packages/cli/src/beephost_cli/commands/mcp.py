"""``beep-host mcp``: an MCP server over stdio whose sandboxes come from this
controller's warm pool, or the block that configures a desktop client to start it.

The server is ``beephost-mcp`` (services/mcp-server), run as a child process: the CLI
depends on the client SDK only, never on the MCP SDK. Its settings go to it in its
environment (``BEEPHOST_MCP_*``), never on its command line, where a token would
show in process listings.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from beephost_cli.commands.backends import Kind
from beephost_cli.errors import Failure
from beephost_cli.state import state

SERVER = "beephost-mcp"
CLI = "beep-host"
#: Not passed on to the server: the CLI's own token (the server gets the controller's
#: as its own variable) and settings that would swap the controller's pool for a
#: fixed backend or another controller.
_NOT_PASSED = (
    "BEEPHOST_TOKEN",
    "BEEPHOST_MCP_BACKEND_URL",
    "BEEPHOST_MCP_BACKEND_TOKEN",
    "BEEPHOST_MCP_CONTROLLER_URL",
    "BEEPHOST_MCP_CONTROLLER_TOKEN",
    "BEEPHOST_MCP_TOKEN",
)


def _script(name: str) -> str | None:
    """A console script beside this interpreter (its virtualenv), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def server_env(
    controller_url: str, token: str | None, venv: str, kind: Kind
) -> dict[str, str]:
    """The server's environment: this one's, with the controller, its token, the
    environment and the transport of its sandboxes (other ``BEEPHOST_MCP_*``
    settings, such as limits, pass through)."""
    env = {k: v for k, v in os.environ.items() if k not in _NOT_PASSED}
    env |= {
        "BEEPHOST_MCP_TRANSPORT": "stdio",
        "BEEPHOST_MCP_CONTROLLER_URL": controller_url,
        "BEEPHOST_MCP_ENVIRONMENT": venv,
        "BEEPHOST_MCP_BACKEND_TYPE": kind.value,
    }
    if token:
        env["BEEPHOST_MCP_CONTROLLER_TOKEN"] = token
    return env


def client_config(
    controller_url: str, token: str | None, venv: str, kind: Kind
) -> dict[str, Any]:
    """The ``mcpServers`` block of a desktop client that starts ``beep-host mcp``."""
    args = ["--controller", controller_url, "mcp", "--venv", venv]
    if kind != Kind.http:
        args += ["--type", kind.value]
    server: dict[str, Any] = {"command": _script(CLI) or CLI, "args": args}
    if token:
        server["env"] = {"BEEPHOST_TOKEN": token}
    return {"mcpServers": {"beephost": server}}


def mcp(
    ctx: typer.Context,
    venv: Annotated[
        str,
        typer.Option(
            "--venv", help="The environment the sandboxes run (its warm pool's)."
        ),
    ],
    kind: Annotated[
        Kind, typer.Option("--type", help="The sandboxes' transport.")
    ] = Kind.http,
    print_config: Annotated[
        bool,
        typer.Option(
            "--client-config",
            help="Print a desktop client's configuration block (JSON) that starts "
            "this command, instead of serving.",
        ),
    ] = False,
) -> None:
    """Serve MCP over stdio: each session gets a sandbox of VENV from this controller.

    For a desktop or IDE client, which starts it and speaks MCP on its stdin and
    stdout; --client-config prints the block to paste into the client's settings.

    Example: beep-host mcp --venv charts --client-config
    """
    st = state(ctx)
    if print_config:
        out = st.output()
        out.json(client_config(st.controller_url, st.token, venv, kind))
        if st.token:
            out.note("the block holds the controller's token: keep it private")
        return
    command = _script(SERVER)
    if command is None:
        raise Failure(
            f"{SERVER} is not installed",
            "install the MCP server beside beep-host: pip install 'beephost-cli[mcp]'",
        )
    env = server_env(st.controller_url, st.token, venv, kind)
    # stdin and stdout are the client's channel: the server inherits them.
    try:
        code = subprocess.run([command], env=env, check=False).returncode
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)
