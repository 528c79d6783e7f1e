"""The command line every backend shares: ``beephost-<kind>-backend [serve|healthcheck]``.

Docker runs ``healthcheck`` every 5 s in each container: this module imports only
``sys``, and each backend imports its probe and its server inside the branch taken.
One optional word needs no argparse, whose help formatter imports shutil (and with
it bz2 and lzma): a quarter of a health check's CPU, and part of every cold start.
"""

import sys
from typing import Literal, NoReturn

Subcommand = Literal["serve", "healthcheck"]
_SUBCOMMANDS: dict[str, Subcommand] = {"serve": "serve", "healthcheck": "healthcheck"}


def subcommand(prog: str, argv: list[str] | None) -> Subcommand:
    """The subcommand ``argv`` (default: the process's arguments) asks for: ``serve``
    (the default) or ``healthcheck``. ``-h`` prints the usage and exits 0; anything
    else, the usage and an error, exit status 2 (as argparse does)."""
    args = sys.argv[1:] if argv is None else argv
    usage = f"usage: {prog} [-h] [{{serve,healthcheck}}]"
    if not args:
        return "serve"
    if len(args) == 1 and args[0] in _SUBCOMMANDS:
        return _SUBCOMMANDS[args[0]]
    if len(args) == 1 and args[0] in ("-h", "--help"):
        about = "serve (the default) runs the server; healthcheck probes a running one"
        print(f"{usage}\n\n{about}")  # noqa: T201 - the command line's help
        raise SystemExit(0)
    wrong = " ".join(args)
    error = f"{prog}: error: expected serve or healthcheck, got {wrong!r}"
    print(f"{usage}\n{error}", file=sys.stderr)  # noqa: T201 - its usage error
    raise SystemExit(2)


def exit_with_health(healthy: bool, reason: str, idle_note: str) -> NoReturn:
    """End a health check: print its report, then exit 0 when healthy, 1 when not.

    The report is one line, the reason and the ``idle_note`` (``activity.idle_note``):
    Docker keeps it, and the controller reads the idle seconds there.
    """
    print(reason + idle_note)  # noqa: T201 - the healthcheck's output is its report
    raise SystemExit(0 if healthy else 1)
