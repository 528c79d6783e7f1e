"""The command line every backend shares: ``beephost-<kind>-backend [serve|healthcheck]``.

Docker runs ``healthcheck`` every 5 s in each container: this module imports only
argparse, and each backend imports its probe and its server inside the branch taken.
"""

import argparse
from typing import Literal, NoReturn


def subcommand(prog: str, argv: list[str] | None) -> Literal["serve", "healthcheck"]:
    """The subcommand ``argv`` asks for: ``serve`` (the default) or ``healthcheck``."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument(
        "command", nargs="?", default="serve", choices=["serve", "healthcheck"]
    )
    command: Literal["serve", "healthcheck"] = parser.parse_args(argv).command
    return command


def exit_with_health(healthy: bool, reason: str, idle_note: str) -> NoReturn:
    """End a health check: print its report, then exit 0 when healthy, 1 when not.

    The report is one line, the reason and the ``idle_note`` (``activity.idle_note``):
    Docker keeps it, and the controller reads the idle seconds there.
    """
    print(reason + idle_note)  # noqa: T201 - the healthcheck's output is its report
    raise SystemExit(0 if healthy else 1)
