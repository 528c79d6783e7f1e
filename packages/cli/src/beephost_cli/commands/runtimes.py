"""``beep-host runtimes`` and ``beep-host init``: the CPython versions and their base images."""

from typing import Annotated

import typer

from beephost_cli.commands._common import (
    JobTimeoutOption,
    JsonOption,
    WaitOption,
    follow_job,
)
from beephost_cli.state import controlled

PythonOption = Annotated[
    str | None,
    typer.Option(
        "--python",
        metavar="X.Y",
        help="CPython minor version (default: the controller's).",
    ),
]


def runtimes(ctx: typer.Context, json: JsonOption = False) -> None:
    """List the CPython versions the controller offers, and which are initialised.

    Example: beep-host runtimes
    """
    with controlled(ctx, json) as (out, controller):
        found = controller.runtimes()
    out.table(
        found,
        ("python", "version", "initialised", "source", "image"),
        ([r.python, r.version, r.initialised, r.source, r.image] for r in found),
        empty="the controller offers no runtimes",
    )


def init(
    ctx: typer.Context,
    python: PythonOption = None,
    wait: WaitOption = True,
    timeout: JobTimeoutOption = 3600.0,
    json: JsonOption = False,
) -> None:
    """Initialise a runtime: make its pinned-CPython base image (a job).

    Example: beep-host init --python 3.13
    """
    with controlled(ctx, json) as (out, controller):
        job = controller.init_runtime(python)
        if not wait:
            out.note(f"queued {job.id}; follow it with `beep-host jobs wait {job.id}`")
            out.result(
                job, [("job", job.id), ("runtime", job.target), ("status", job.status)]
            )
            return
        follow_job(
            out,
            controller,
            job.id,
            f"initialising runtime {job.target}",
            timeout=timeout,
            failure_hint="the log above says why; run `beep-host init` again once fixed",
        )
        found = [r for r in controller.runtimes() if r.python == job.target]
    if not found:  # the controller stopped offering it meanwhile
        out.result(
            job, [("job", job.id), ("runtime", job.target), ("status", job.status)]
        )
        return
    runtime = found[0]
    out.result(
        runtime,
        [
            ("python", runtime.python),
            ("version", runtime.version),
            ("image", runtime.image),
            ("source", runtime.source),
        ],
    )
