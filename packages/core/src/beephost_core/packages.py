"""Packages installed at run time: a staged install moved into the site directory.

The controller resolves, downloads and unpacks the packages outside the backend (which
has no network) and copies the result into ``<root>/.staging-<id>``, on the same
volume as ``<root>/site``, the directory on every worker's ``sys.path``. ``activate``
moves the staged files in, whole directories where it can, and every session finds
them at its next import. When a staged file would replace one already there it moves
nothing: a refused install changes nothing. The controller runs it in the backend's
container, as the backend's user::

    python -m beephost_core.packages activate /packages .staging-<id>
    python -m beephost_core.packages list /packages/site
    python -m beephost_core.packages discard /packages .staging-<id>

Each prints one JSON object (``{"installed": [{"name", "version"}, ...]}``, or
``{"error": ...}`` with exit status 1).
"""

import json
import os
import shutil
import sys
from importlib.metadata import PathDistribution
from pathlib import Path

SITE = "site"
STAGING_PREFIX = ".staging-"


class PackagesRefused(Exception):
    """The staged install cannot go in; nothing was moved."""


def activate(root: Path, staged: str) -> list[dict[str, str]]:
    """Move ``root/staged`` into ``root/site``; the staging directory is removed either
    way. Returns what is installed afterwards.

    Raises:
        PackagesRefused: ``staged`` is no staging directory of ``root``, or one of its
            files is in ``site`` already (named in the message).
    """
    _check_staged(staged)
    staging, site = root / staged, root / SITE
    try:
        if not staging.is_dir() or staging.is_symlink():
            raise PackagesRefused(f"nothing staged at {staging}")
        moves, clashes = _plan(staging, site)
        if clashes:
            shown = ", ".join(sorted(clashes)[:5])
            raise PackagesRefused(f"{len(clashes)} file(s) already installed: {shown}")
        # Code before its metadata: a *.dist-info dir appears only once what it
        # describes is in place.
        for source, target in sorted(
            moves, key=lambda m: m[0].name.endswith(".dist-info")
        ):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(source, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return installed(site)


def discard(root: Path, staged: str) -> None:
    """Remove a staging directory (a copy that failed half-way): nothing else.

    Raises:
        PackagesRefused: ``staged`` is no staging directory of ``root``.
    """
    _check_staged(staged)
    shutil.rmtree(root / staged, ignore_errors=True)


def _check_staged(staged: str) -> None:
    if not staged.startswith(STAGING_PREFIX) or "/" in staged or staged in (".", ".."):
        raise PackagesRefused(f"{staged!r} is no staging directory")


def _plan(staging: Path, site: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """The renames that merge ``staging`` into ``site`` (a directory missing there
    moves whole; one present on both sides is merged), and the paths that clash."""
    moves: list[tuple[Path, Path]] = []
    clashes: list[str] = []
    pending = [(staging, site)]
    while pending:
        source_dir, target_dir = pending.pop()
        for source in sorted(source_dir.iterdir()):
            target = target_dir / source.name
            if not os.path.lexists(target):
                moves.append((source, target))
            elif _real_dir(source) and _real_dir(target):
                pending.append((source, target))  # a namespace package: merge
            else:
                clashes.append(str(target.relative_to(site)))
    return moves, clashes


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def installed(site: Path) -> list[dict[str, str]]:
    """The distributions in ``site``, by name, from their ``*.dist-info``."""
    found = []
    for info in sorted(site.glob("*.dist-info")) if site.is_dir() else []:
        metadata = PathDistribution(info).metadata
        if metadata is not None and metadata["Name"]:
            found.append({"name": metadata["Name"], "version": metadata["Version"]})
    return sorted(found, key=lambda d: d["name"].lower())


def main(argv: list[str]) -> int:
    try:
        match argv:
            case ["activate", root, staged]:
                result = activate(Path(root), staged)
            case ["list", site]:
                result = installed(Path(site))
            case ["discard", root, staged]:
                discard(Path(root), staged)
                result = installed(Path(root) / SITE)
            case _:
                raise PackagesRefused(
                    "usage: python -m beephost_core.packages "
                    "(activate ROOT STAGED | discard ROOT STAGED | list SITE)"
                )
    except (PackagesRefused, OSError) as exc:
        sys.stdout.write(json.dumps({"error": str(exc)}) + "\n")
        return 1
    sys.stdout.write(json.dumps({"installed": result}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
