"""``beep-host secret ...``: values an egress policy puts into a header on the way out.

A value is read from stdin (a prompt that does not echo it on a terminal), never from
the command line, where every process listing shows it. No command prints one.
"""

import sys
from typing import Annotated

import typer

from beephost_cli.commands._common import JsonOption
from beephost_cli.errors import Failure
from beephost_cli.output import age
from beephost_cli.state import controlled

app = typer.Typer(
    name="secret",
    help="Stored secrets: egress policies put them into headers, sandboxes never "
    "see them.",
    no_args_is_help=True,
)

NameArgument = Annotated[str, typer.Argument(help="The secret's name.")]


def _read_value() -> str:
    if sys.stdin.isatty():
        value: str = typer.prompt("value", hide_input=True)
        return value
    # One trailing newline is the shell's (echo, a file's last line), not the value's.
    return sys.stdin.read().removesuffix("\n").removesuffix("\r")


@app.command("set")
def set_(ctx: typer.Context, name: NameArgument, json: JsonOption = False) -> None:
    """Store a secret, or replace its value, reading the value from stdin.

    Example: printf %s "$WEATHER_KEY" | beep-host secret set weather-key
    """
    value = _read_value()
    if not value:
        raise Failure(
            "no value on stdin", "pipe it in: printf %s VALUE | beep-host ..."
        )
    with controlled(ctx, json) as (out, controller):
        secret = controller.set_secret(name, value)
    if out.json_mode:
        out.json(secret)
        return
    out.done(f"secret {secret.name} stored")


@app.command("list")
def list_(ctx: typer.Context, json: JsonOption = False) -> None:
    """List the stored secrets' names (never their values).

    Example: beep-host secret list
    """
    with controlled(ctx, json) as (out, controller):
        secrets = controller.secrets()
    out.table(
        secrets,
        ("name", "set"),
        ([s.name, age(s.updated_at) + " ago"] for s in secrets),
        empty="no secrets stored",
    )


@app.command("rm")
def rm(ctx: typer.Context, name: NameArgument) -> None:
    """Forget a secret; starts whose egress policy names it are refused from then on.

    Example: beep-host secret rm weather-key
    """
    with controlled(ctx) as (out, controller):
        controller.delete_secret(name)
    out.done(f"secret {name} removed")
