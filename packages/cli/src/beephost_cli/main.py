"""The ``beep-host`` application: global options, the command groups, error reporting.

Every command is a thin shell over :class:`beephost_client.ControllerClient` (or a
backend :class:`beephost_client.Client`). Exit codes: 0 success, 1 an error (one
``error:`` line and a ``hint:`` on stderr), 2 a usage error.
"""

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from typer.core import TyperGroup

from beephost_cli.commands import (
    backends,
    code,
    config,
    files,
    images,
    jobs,
    mcp,
    packages,
    runtimes,
    secrets,
    venv,
)
from beephost_cli.errors import Failure, hint_for, message_of
from beephost_cli.output import Output
from beephost_cli.state import State
from beephost_client import BeepHostError, ExecutionFailed
from beephost_client.controller import DEFAULT_CONTROLLER_URL


class _ReportingGroup(TyperGroup):
    """Turns errors raised by commands into one error line and exit code 1."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]  # typer's Context is click's
        try:
            return super().invoke(ctx)
        except Failure as failure:
            _output(ctx).error(failure.message, failure.hint)
        except BeepHostError as error:
            out = _output(ctx)
            if isinstance(error, ExecutionFailed) and error.remote_traceback:
                out.raw_err(error.remote_traceback)
            st = ctx.find_object(State)
            out.error(
                message_of(error), hint_for(error, st.target if st else "controller")
            )
        raise typer.Exit(1)


def _output(ctx: typer.Context) -> Output:
    st = ctx.find_object(State)
    return st.output() if st else Output()


app = typer.Typer(
    cls=_ReportingGroup,
    name="beep-host",
    help="Beep Python Host: runtimes, environments, backends, and Python on them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    unix = parts.path.startswith("/") and not (parts.netloc or parts.query)
    if parts.scheme == "unix" and unix:
        return value  # the controller's Unix socket (inside an admin backend)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(
            f"not an http(s) URL with a host nor unix:///socket/path: {value!r}"
        )
    return value


@app.callback()
def _root(
    ctx: typer.Context,
    controller: Annotated[
        str,
        typer.Option(
            "--controller",
            envvar="BEEPHOST_CONTROLLER_URL",
            metavar="URL",
            help="The controller's URL.",
            show_default=True,
            callback=_http_url,
        ),
    ] = DEFAULT_CONTROLLER_URL,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="BEEPHOST_TOKEN",
            help="The controller's API token.",
            show_default=False,
        ),
    ] = None,
    json: Annotated[
        bool, typer.Option("--json", help="Print results as JSON (every command).")
    ] = False,
) -> None:
    preset = ctx.obj if isinstance(ctx.obj, State) else State()
    preset.controller_url, preset.token, preset.json = controller, token or None, json
    ctx.obj = preset


# `beep-host NAME`, for each: `--help` lists them in this order, then the groups.
_COMMANDS: dict[str, Callable[..., None]] = {
    "init": runtimes.init,
    "runtimes": runtimes.runtimes,
    "start": backends.start,
    "stop": backends.stop,
    "status": backends.status,
    "logs": backends.logs,
    "connection": backends.connection,
    "eval": code.eval_,
    "exec": code.exec_,
    "cp": files.cp,
    "ls": files.ls,
    "install": packages.install,
    "prune": images.prune,
    "config": config.config,
    "mcp": mcp.mcp,
}
for _name, _command in _COMMANDS.items():
    app.command(_name)(_command)
app.add_typer(venv.app)
app.add_typer(jobs.app)
app.add_typer(secrets.app)


def main() -> None:
    """The console script ``beep-host``."""
    app(prog_name="beep-host")
