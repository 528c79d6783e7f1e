"""Child processes of the e2e tests: run to their end, their output captured as text."""

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def run_captured(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` until it exits (``TimeoutExpired`` after ``timeout`` s), with
    ``stdin`` as its input; its exit status is the caller's to check."""
    return subprocess.run(
        list(argv),
        input=stdin,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
