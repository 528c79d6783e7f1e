"""Options and steps several commands share: ``--json``, ``--wait``, following a job."""

from typing import Annotated, Any

import typer

from beephost_cli.errors import Failure
from beephost_cli.output import Output
from beephost_client import ControllerClient
from beephost_client.controller import Job

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON on stdout.")
]
WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait/--no-wait",
        help="Wait for the job, showing its log (--no-wait: print the job and return).",
    ),
]
JobTimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout", min=1, help="Seconds to wait for the job.", show_default=True
    ),
]


def requirements_argument(example: str) -> Any:  # typer types its markers as Any
    """The optional PACKAGES... argument: requirement specifiers, like ``example``."""
    return typer.Argument(
        help=f"Requirement specifiers, e.g. {example}.", show_default=False
    )


def follow_job(
    out: Output,
    controller: ControllerClient,
    job_id: str,
    title: str,
    *,
    timeout: float,
    failure_hint: str | None = None,
) -> Job:
    """Show a job's log live until it ends.

    Raises:
        Failure: The job failed (its log tail is shown first).
    """
    with out.job_progress(title) as progress:
        try:
            job = controller.wait_job(
                job_id, on_log=lambda line: progress.log(line.line), timeout=timeout
            )
        except KeyboardInterrupt:
            out.note(
                f"the job goes on: `beep-host jobs wait {job_id}` follows it again"
            )
            raise
    if not job.succeeded:
        progress.replay()
        raise Failure(f"{title} failed: {job.error or job.status}", failure_hint)
    out.done(f"{title}: done in {progress.elapsed:.1f}s")
    return job


def log_lines(controller: ControllerClient, job_id: str) -> list[str]:
    """The whole log of a job, page by page."""
    lines: list[str] = []
    after = -1
    while True:
        page = controller.job_log(job_id, after=after)
        if not page.lines:
            return lines
        lines += [line.line for line in page.lines]
        after = page.next
