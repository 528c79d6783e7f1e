"""``beep-host start|stop|status|logs``: backend containers the controller runs."""

import time
from enum import StrEnum
from typing import Annotated

import typer

from beephost_cli.commands._backend import TokenFileOption, read_token
from beephost_cli.commands._common import JsonOption
from beephost_cli.commands._egress import (
    AllowOption,
    SecretOption,
    egress_policy,
    egress_summary,
)
from beephost_cli.errors import Failure
from beephost_cli.output import age, duration, jsonable, size_text
from beephost_cli.state import controlled, state
from beephost_client import InvalidRequest, NotFound, Unauthorized, Unavailable
from beephost_client.controller import Backend, EgressRefusal, Image, Limits, Pool

DEFAULT_VENV = "admin"


class Kind(StrEnum):
    """The backend transports."""

    http = "http"
    pipe = "pipe"
    rpc = "rpc"


def _why(backend: Backend) -> str:
    """What follows a status: ``(pooled)`` for an unclaimed pool member, else the
    reason, if any."""
    if backend.pooled:
        return " (pooled)"
    return f" ({backend.reason})" if backend.reason else ""


def _fields(backend: Backend, token: str | None = None) -> list[tuple[str, object]]:
    limits = backend.limits
    pairs: list[tuple[str, object]] = [
        ("id", backend.id),
        ("type", backend.type),
        ("venv", backend.environment),
        ("status", backend.status),
        ("reason", backend.reason),
        ("endpoint", backend.endpoint),
        ("token", token),
        ("container", backend.container_id[:12] if backend.container_id else None),
        ("restarts", backend.restarts),
        (
            "last exit",
            f"{backend.last_exit} (exit {backend.exit_code})"
            if backend.last_exit
            else None,
        ),
        ("admin", "yes" if backend.admin else None),
        ("memory", f"{limits.memory_mb} MiB" if limits.memory_mb else None),
        ("cpus", limits.cpus),
        ("pids", limits.pids),
        ("egress", egress_summary(backend.egress)),
        ("age", age(backend.created_at) or None),
        ("pool", "unclaimed member" if backend.pooled else None),
        (
            "claimed",
            age(backend.claimed_at) + " ago from a warm pool"
            if backend.claimed_at
            else None,
        ),
        ("expires", _expiry(backend)),
    ]
    return [(name, value) for name, value in pairs if value is not None]


def refusals_text(refusals: list[EgressRefusal]) -> str:
    """The last refusals of a backend's egress, one line each, oldest first."""
    lines = [f"egress refusals (last {len(refusals)}):"]
    for refusal in refusals:
        when = (
            time.strftime("%H:%M:%S", time.localtime(refusal.at))
            if refusal.at is not None
            else "-"
        )
        lines.append(
            f"  {when}  {refusal.kind:<7} {refusal.destination}: {refusal.reason}"
        )
    return "\n".join(lines)


def _expiry(backend: Backend) -> str | None:
    if backend.expires_at is None or backend.status == "stopped":
        return None
    left = backend.expires_at - time.time()
    return f"in {duration(left)}" if left > 0 else "now"


def start(
    ctx: typer.Context,
    kind: Annotated[Kind, typer.Argument(help="The transport: http, pipe or rpc.")],
    venv: Annotated[
        str, typer.Option("--venv", help="The environment to run.", show_default=True)
    ] = DEFAULT_VENV,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=1,
            max=65535,
            help="Host port (http, rpc); default: a free one.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="The backend's own token (default: a random one). The controller's "
            "token goes before the command: beep-host --token T start ...",
        ),
    ] = None,
    token_file: TokenFileOption = None,
    bind: Annotated[
        str | None,
        typer.Option("--bind", help="Host address to publish on (default: loopback)."),
    ] = None,
    memory: Annotated[
        int | None,
        typer.Option("--memory", min=16, metavar="MiB", help="Memory limit."),
    ] = None,
    cpus: Annotated[
        float | None, typer.Option("--cpus", min=0.01, help="CPU limit, in CPUs.")
    ] = None,
    pids: Annotated[
        int | None, typer.Option("--pids", min=1, help="Process limit.")
    ] = None,
    ttl: Annotated[
        float | None,
        typer.Option(
            "--ttl",
            min=1,
            metavar="SECONDS",
            help="Its maximum lifetime: then the controller stops it (reason "
            "expired). Default: the controller's BACKEND_TTL (a day unless set).",
        ),
    ] = None,
    idle_timeout: Annotated[
        float | None,
        typer.Option(
            "--idle-timeout",
            min=1,
            metavar="SECONDS",
            help="Stop it after this long without a request (reason idle). Default: "
            "the controller's BACKEND_IDLE_TIMEOUT (an hour unless set).",
        ),
    ] = None,
    network: Annotated[
        bool | None,
        typer.Option(
            "--network/--no-network",
            help="Replace the environment's egress policy: the whole network (unsafe "
            "for model code) or none. Default: the environment's.",
            show_default=False,
        ),
    ] = None,
    allow: AllowOption = None,
    secret_headers: SecretOption = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Wait until the backend is ready (--no-wait: print it while it "
            "starts and return).",
        ),
    ] = True,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=1, help="Seconds to wait until it is ready."),
    ] = 120.0,
    json: JsonOption = False,
) -> None:
    """Start a backend for an environment and wait until it is ready.

    Prints its endpoint and token: the token is shown only here.

    Example: beep-host start http --venv data --port 5678
    """
    token = read_token(token, token_file)
    egress = egress_policy(allow, secret_headers)
    st = state(ctx)
    out = st.output(json)
    limits = Limits(memory, cpus, pids) if (memory, cpus, pids) != (None,) * 3 else None
    with st.controller() as controller:
        try:
            backend = controller.start_backend(
                venv,
                kind.value,
                token=token,
                port=port,
                bind_address=bind,
                limits=limits,
                ttl=ttl,
                idle_timeout=idle_timeout,
                options=None if network is None else {"network": network},
                egress=egress,
            )
        except NotFound as exc:  # the only thing a start can miss: the environment
            if "route" in exc.data:  # ... unless the controller has no backends API
                raise
            hint = (
                "make it with `beep-host venv admin`"
                if venv == DEFAULT_VENV
                else f"make it with `beep-host venv create {venv} ...`"
            )
            raise Failure(exc.message, f"{hint}, or pass --venv NAME") from exc
        except InvalidRequest as exc:
            if exc.data.get("environment") != venv:
                raise
            raise Failure(  # not built (yet), or its build failed
                exc.message, f"`beep-host venv status {venv} --log` shows its build"
            ) from exc
        except Unavailable as exc:
            if "egress" in exc.data:  # an allow-list, which no engine enforces yet
                raise
            raise Failure(
                exc.message,
                "the controller's log has the details (is Docker reachable?)",
            ) from exc
        secret = backend.token
        if wait:
            title = f"starting {kind.value} backend {backend.id} for {venv}"
            with out.status(f"{title}: {backend.status}") as line:
                try:
                    backend = controller.wait_backend(
                        backend.id,
                        timeout=timeout,
                        on_status=lambda b: line.update(
                            f"{title}: {b.status}"
                            + (f" ({b.reason})" if b.reason else "")
                        ),
                    )
                except Unavailable as exc:
                    raise Failure(
                        exc.message, f"its output: `beep-host logs {backend.id}`"
                    ) from exc
            out.done(f"backend {backend.id} is ready")
    if out.json_mode:
        out.json({**jsonable(backend), "token": secret})
        return
    out.result(backend, _fields(backend, secret))
    out.note(f"try it: beep-host eval --backend {backend.id} '1 + 1'")


def stop(
    ctx: typer.Context,
    ids: Annotated[
        list[str] | None,
        typer.Argument(metavar="[ID]...", help="The backends to stop."),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Stop every backend your token started.")
    ] = False,
    everyone: Annotated[
        bool,
        typer.Option(
            "--everyone",
            help="With --all: everyone's backends, not only yours (the controller's "
            "token).",
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Stop backends and remove their containers.

    Example: beep-host stop 3f2a9c  (or: beep-host stop --all)
    """
    if bool(ids) == all_:
        raise typer.BadParameter("give backend IDs, or --all", param_hint="ID | --all")
    if everyone and not all_:
        raise typer.BadParameter("--everyone goes with --all", param_hint="--everyone")
    st = state(ctx)
    out = st.output(json)
    stopped: list[str] = []
    with st.controller() as controller:
        # Stopped ones too (an expired backend's row): stopping deletes them. Not
        # warm pools' members: a pool's size says how many it keeps.
        targets = ids or [
            b.id for b in controller.backends(mine=not everyone) if not b.pooled
        ]
        for backend_id in targets:
            try:
                controller.stop_backend(backend_id)
            except NotFound:
                if ids:
                    raise
                continue  # --all: it went away meanwhile
            stopped.append(backend_id)
            if not out.json_mode:
                out.done(f"stopped {backend_id}")
    if out.json_mode:
        out.json({"stopped": stopped})
    elif not stopped:
        out.note("no backends to stop")


def status(
    ctx: typer.Context,
    backend_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="One backend (default: all).")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Show the backends (or one of them, with the last connections its egress
    proxy refused).

    Example: beep-host status
    """
    with controlled(ctx, json) as (out, controller):
        if backend_id is not None:
            backend = controller.backend(backend_id)
            refusals: list[EgressRefusal] = []
            if backend.egress.mode == "allow_list":
                refusals = controller.egress_refusals(backend_id)
            if out.json_mode:
                out.json({**jsonable(backend), "egress_refusals": refusals})
                return
            out.result(backend, _fields(backend))
            if refusals:
                out.text(refusals_text(refusals))
            return
        found = controller.backends()
        try:
            on_disk: list[Image] | None = controller.images()
            pools: list[Pool] = controller.pools()
        except (Unauthorized, NotFound):  # a scoped token, or an older controller
            on_disk, pools = None, []
    out.table(
        found,
        ("id", "type", "venv", "status", "endpoint", "restarts", "age"),
        (
            [
                b.id,
                b.type,
                b.environment,
                b.status + _why(b),
                b.endpoint,
                b.restarts,
                age(b.created_at),
            ]
            for b in found
        ),
        empty="no backends: `beep-host start http|pipe|rpc` starts one",
    )
    if pools and not out.json_mode:
        out.note(
            "warm pools: "
            + ", ".join(
                f"{p.environment}/{p.type} {p.ready}/{p.size} ready"
                + (f" ({p.starting} starting)" if p.starting else "")
                for p in pools
            )
        )
    if on_disk is not None and not out.json_mode:
        total = sum(image.disk_bytes for image in on_disk)
        unused = sum(image.disk_bytes for image in on_disk if not image.environments)
        out.note(
            f"environment images: {size_text(total)} on disk"
            + (f", {size_text(unused)} unused (`beep-host prune`)" if unused else "")
        )


def logs(
    ctx: typer.Context,
    backend_id: Annotated[str, typer.Argument(metavar="ID", help="The backend.")],
    tail: Annotated[
        int | None, typer.Option("--tail", min=1, help="Only the last N lines.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Print a backend container's output.

    Example: beep-host logs 3f2a9c --tail 50
    """
    with controlled(ctx, json) as (out, controller):
        text = controller.backend_logs(backend_id, tail=tail)
    if out.json_mode:
        out.json({"id": backend_id, "logs": text})
    else:
        out.text(text)


def connection(
    ctx: typer.Context,
    backend_id: Annotated[str, typer.Argument(metavar="ID", help="The backend.")],
    json: JsonOption = False,
) -> None:
    """Print a backend's URL and token, to connect to it from elsewhere.

    Example: beep-host connection 3f2a9c
    """
    with controlled(ctx, json) as (out, controller):
        found = controller.backend_connection(backend_id)
    if out.json_mode:
        out.json({"url": found.url, "token": found.token})
        return
    out.result(found, [("url", found.url), ("token", found.token or "(none)")])
