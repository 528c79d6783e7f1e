"""``beep-host install``: add packages to a running backend, offline."""

from typing import Annotated

import typer

from beephost_cli.commands._common import (
    JobTimeoutOption,
    JsonOption,
    WaitOption,
    follow_job,
    requirements_argument,
)
from beephost_cli.state import controlled


def install(
    ctx: typer.Context,
    packages: Annotated[
        list[str] | None, requirements_argument("tabulate 'rich>=13'")
    ] = None,
    backend: Annotated[
        str,
        typer.Option("--backend", "-b", metavar="ID", help="The running backend."),
    ] = "",
    list_only: Annotated[
        bool, typer.Option("--list", help="Only list what was installed so far.")
    ] = False,
    wait: WaitOption = True,
    timeout: JobTimeoutOption = 600.0,
    json: JsonOption = False,
) -> None:
    """Add packages to a running backend; every session imports them next.

    The controller resolves them with the environment's lock (nothing locked changes
    version), downloads the wheels and copies them in: the backend stays offline. The
    environment is unchanged: `venv create` is the reproducible way.

    Example: beep-host install -b b-3f2a9c0d1e2f tabulate
    """
    if not backend:
        raise typer.BadParameter("name the backend", param_hint="'--backend' / '-b'")
    if not packages and not list_only:
        raise typer.BadParameter("name at least one package, or pass --list")
    with controlled(ctx, json) as (out, controller):
        if packages:
            job = controller.install(backend, packages)
            if not wait:
                out.note(
                    f"queued {job.id}; follow it with `beep-host jobs wait {job.id}`"
                )
                out.result(job, [("id", job.id), ("status", job.status)])
                return
            follow_job(
                out,
                controller,
                job.id,
                f"installing {' '.join(packages)} into {backend}",
                timeout=timeout,
                failure_hint="the backend is unchanged; a conflict with the "
                "environment's lock needs another version, or a new environment",
            )
        installed = controller.installed_packages(backend)
    out.table(
        installed,
        ("name", "version"),
        ([p.name, p.version] for p in installed),
        empty=f"nothing installed into {backend} at run time",
    )
