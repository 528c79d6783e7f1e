"""``beep-host jobs ...``: the controller's builds and runtime inits."""

from typing import Annotated

import typer

from beephost_cli.commands._common import (
    JobTimeoutOption,
    JsonOption,
    follow_job,
    log_lines,
)
from beephost_cli.output import age, jsonable
from beephost_cli.state import controlled
from beephost_client.controller import Job

app = typer.Typer(
    name="jobs", help="Builds and runtime inits, with their logs.", no_args_is_help=True
)

JobArgument = Annotated[str, typer.Argument(metavar="ID", help="The job's id.")]


def _fields(job: Job) -> list[tuple[str, object]]:
    took = (
        f"{job.finished_at - job.started_at:.1f}s"
        if job.finished_at and job.started_at
        else None
    )
    pairs: list[tuple[str, object]] = [
        ("id", job.id),
        ("kind", job.kind),
        ("target", job.target),
        ("status", job.status),
        ("error", job.error),
        ("took", took),
        ("age", age(job.created_at) or None),
    ]
    return [(name, value) for name, value in pairs if value is not None]


@app.command("list")
def list_(ctx: typer.Context, json: JsonOption = False) -> None:
    """List the jobs, newest last.

    Example: beep-host jobs list
    """
    with controlled(ctx, json) as (out, controller):
        found = controller.jobs()
    out.table(
        found,
        ("id", "kind", "target", "status", "age", "error"),
        ([j.id, j.kind, j.target, j.status, age(j.created_at), j.error] for j in found),
        empty="no jobs",
    )


@app.command("status")
def status(
    ctx: typer.Context,
    job_id: JobArgument,
    log: Annotated[bool, typer.Option("--log", help="Also print its log.")] = False,
    json: JsonOption = False,
) -> None:
    """Show a job (and its log).

    Example: beep-host jobs status job-1f2e3d4c5b6a --log
    """
    with controlled(ctx, json) as (out, controller):
        job = controller.job(job_id)
        lines = log_lines(controller, job_id) if log else []
    if out.json_mode:
        out.json({**jsonable(job), **({"log": lines} if log else {})})
        return
    out.result(job, _fields(job))
    if lines:
        out.text("\n".join(lines))


@app.command("wait")
def wait(
    ctx: typer.Context,
    job_id: JobArgument,
    timeout: JobTimeoutOption = 3600.0,
    json: JsonOption = False,
) -> None:
    """Follow a job's log until it ends; exit 1 if it failed.

    Example: beep-host jobs wait job-1f2e3d4c5b6a
    """
    with controlled(ctx, json) as (out, controller):
        job = controller.job(job_id)
        title = f"{job.kind} {job.target}"
        job = follow_job(out, controller, job_id, title, timeout=timeout)
    out.result(job, _fields(job))
