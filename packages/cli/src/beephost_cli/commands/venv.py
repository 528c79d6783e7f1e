"""``beep-host venv ...``: environments (a runtime plus requirements, built into an image)."""

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from beephost_cli.commands._common import (
    JobTimeoutOption,
    JsonOption,
    WaitOption,
    follow_job,
    log_lines,
    requirements_argument,
)
from beephost_cli.commands._egress import (
    AllowOption,
    SecretOption,
    egress_policy,
    egress_summary,
)
from beephost_cli.commands.runtimes import PythonOption
from beephost_cli.errors import Failure
from beephost_cli.output import Output, age, jsonable
from beephost_cli.state import controlled, state
from beephost_client import Conflict, ControllerClient
from beephost_client.controller import Environment, Pool

app = typer.Typer(
    name="venv",
    help="Environments: a runtime plus requirements, built into an image.",
    no_args_is_help=True,
)

NameArgument = Annotated[str, typer.Argument(help="The environment's name.")]


def _fields(env: Environment) -> list[tuple[str, object]]:
    return [
        ("name", env.name),
        ("python", env.python),
        ("status", env.status),
        ("requirements", ", ".join(env.requirements) or "(none)"),
        ("egress", egress_summary(env.egress)),
        ("admin", env.admin),
        ("image", env.image),
        ("job", env.job_id),
        ("error", env.error),
        ("created", age(env.created_at) + " ago" if env.created_at else None),
    ]


def _show(out: Output, env: Environment) -> None:
    out.result(
        env, [(name, value) for name, value in _fields(env) if value is not None]
    )


def _build(
    out: Output, controller: ControllerClient, env: Environment, timeout: float
) -> Environment:
    """Wait for the environment's build, if one is under way; the environment after it."""
    if env.status == "ready" or not env.job_id:
        return env
    follow_job(
        out,
        controller,
        env.job_id,
        f"building environment {env.name}",
        timeout=timeout,
        failure_hint=(
            f"fix the requirements and recreate it (`beep-host venv delete {env.name}`),"
            f" or retry the same build with `beep-host venv create {env.name} --exist-ok ...`"
        ),
    )
    return controller.environment(env.name)


def _read_requirements(path: Path | None) -> str | None:
    if path is None:
        return None
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from exc


@app.command("create")
def create(
    ctx: typer.Context,
    name: NameArgument,
    packages: Annotated[
        list[str] | None, requirements_argument("'pandas>=2' six")
    ] = None,
    requirements: Annotated[
        Path | None,
        typer.Option(
            "-r",
            "--requirements",
            help="A requirements.txt to install ('-' reads stdin); merged with PACKAGE.",
            dir_okay=False,
            allow_dash=True,
        ),
    ] = None,
    python: PythonOption = None,
    network: Annotated[
        bool,
        typer.Option(
            "--network",
            help="Give the environment's backends the whole network (unsafe for "
            "model code: prefer --allow).",
        ),
    ] = False,
    allow: AllowOption = None,
    secret_headers: SecretOption = None,
    exist_ok: Annotated[
        bool,
        typer.Option(
            "--exist-ok",
            help="Succeed if an equal environment exists (and rebuild it if it failed).",
        ),
    ] = False,
    wait: WaitOption = True,
    timeout: JobTimeoutOption = 3600.0,
    json: JsonOption = False,
) -> None:
    """Create an environment and build its image, showing the build log.

    Example: beep-host venv create data --python 3.13 pandas 'numpy<3'
    """
    st = state(ctx)
    out = st.output(json)
    text = _read_requirements(requirements)
    egress = egress_policy(allow, secret_headers)
    with st.controller() as controller:
        make = (
            controller.ensure_environment if exist_ok else controller.create_environment
        )
        try:
            env = make(
                name,
                python=python,
                requirements=packages or (),
                requirements_txt=text,
                network=network,
                egress=egress,
            )
        except Conflict as exc:
            raise Failure(
                exc.message,
                f"pick another name, pass --exist-ok for the same definition, or "
                f"delete it first: `beep-host venv delete {name}`",
            ) from exc
        if wait:
            env = _build(out, controller, env, timeout)
            if env.status == "failed":
                raise Failure(f"environment {name} failed: {env.error}")
        elif env.job_id and env.status != "ready":
            out.note(
                f"building as {env.job_id}; `beep-host jobs wait {env.job_id}` follows it"
            )
    _show(out, env)


@app.command("list")
def list_(ctx: typer.Context, json: JsonOption = False) -> None:
    """List the environments.

    Example: beep-host venv list
    """
    with controlled(ctx, json) as (out, controller):
        envs = controller.environments()
    out.table(
        envs,
        ("name", "python", "status", "requirements", "egress", "age"),
        (
            [
                e.name,
                e.python,
                e.status,
                ", ".join(e.requirements),
                e.egress.mode,
                age(e.created_at),
            ]
            for e in envs
        ),
        empty="no environments yet: `beep-host venv create NAME PACKAGE...` makes one",
    )


@app.command("status")
def status(
    ctx: typer.Context,
    name: NameArgument,
    log: Annotated[
        bool, typer.Option("--log", help="Also print the log of its last build.")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Show an environment: its status, requirements, image and last build.

    Example: beep-host venv status data --log
    """
    with controlled(ctx, json) as (out, controller):
        env = controller.environment(name)
        lines = log_lines(controller, env.job_id) if log and env.job_id else []
    if out.json_mode:
        out.json({**jsonable(env), **({"log": lines} if log else {})})
        return
    _show(out, env)
    if lines:
        out.text("\n".join(lines))


@app.command("delete")
def delete(ctx: typer.Context, name: NameArgument, json: JsonOption = False) -> None:
    """Delete an environment (its backends must be stopped first).

    Example: beep-host venv delete data
    """
    with controlled(ctx, json) as (out, controller):
        try:
            controller.delete_environment(name)
        except Conflict as exc:
            raise Failure(
                exc.message,
                "stop its backends first: `beep-host status` lists them, "
                "`beep-host stop ID` stops one",
            ) from exc
    if out.json_mode:
        out.json({"deleted": name})
    else:
        out.done(f"deleted environment {name}")


class PoolKind(StrEnum):
    """The backend transports a pool can keep."""

    http = "http"
    pipe = "pipe"
    rpc = "rpc"


def _pool_table(out: Output, pools: list[Pool], name: str) -> None:
    out.table(
        pools,
        ("type", "size", "ready", "starting", "setting"),
        ([p.type, p.size, p.ready, p.starting, p.source] for p in pools),
        empty=f"environment {name} has no warm pool: "
        f"`beep-host venv pool {name} --type http --size 2` keeps two ready",
    )


@app.command("pool")
def pool(
    ctx: typer.Context,
    name: NameArgument,
    kind: Annotated[
        PoolKind, typer.Option("--type", help="The pool's backend type.")
    ] = PoolKind.http,
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            min=0,
            max=64,
            help="Keep this many started and ready (0: none). Without it: show the "
            "environment's pools.",
        ),
    ] = None,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset", help="Drop the environment's own size: the controller's applies."
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Show or size an environment's warm pools: backends started ahead, so that
    `beep-host start` hands one out in milliseconds.

    Example: beep-host venv pool data --type http --size 2
    """
    if reset and size is not None:
        raise typer.BadParameter(
            "give --size or --reset, not both", param_hint="--reset"
        )
    with controlled(ctx, json) as (out, controller):
        if reset:
            controller.reset_pool(name, kind.value)
        elif size is not None:
            controller.set_pool(name, kind.value, size)
        pools = controller.pools(name)
    if size is not None and not out.json_mode:
        out.done(f"{name}/{kind.value} pool: keeping {size} ready")
    _pool_table(out, pools, name)


@app.command("admin")
def admin(
    ctx: typer.Context,
    wait: WaitOption = True,
    timeout: JobTimeoutOption = 3600.0,
    json: JsonOption = False,
) -> None:
    """Make sure the admin environment exists and is built.

    Example: beep-host venv admin
    """
    with controlled(ctx, json) as (out, controller):
        env = controller.admin_environment()
        if wait:
            env = _build(out, controller, env, timeout)
            if env.status == "failed":
                raise Failure(f"environment {env.name} failed: {env.error}")
    _show(out, env)
