"""Pinned public surfaces: a module's ``__all__`` against its snapshot in ``surfaces/``.

A snapshot is ``surfaces/<module>.txt``: ``#`` comment lines, then the public names,
one a line, sorted. A change to the public surface is then deliberate: whoever adds or
removes a name changes the snapshot in the same commit.
"""

import types
from pathlib import Path

SURFACES = Path(__file__).parent / "surfaces"
_ROOT = Path(__file__).parents[3]


def snapshot_path(module_name: str) -> Path:
    return SURFACES / f"{module_name}.txt"


def pinned(module_name: str) -> list[str]:
    """The names in ``module_name``'s snapshot, in the file's order."""
    lines = snapshot_path(module_name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def surface_change(module: types.ModuleType) -> str:
    """What differs between ``module.__all__`` and its snapshot, "" when nothing."""
    names = list(module.__all__)
    snapshot = pinned(module.__name__)
    problems = []
    added = sorted(set(names) - set(snapshot))
    removed = sorted(set(snapshot) - set(names))
    if added:
        problems.append(f"added to __all__: {', '.join(added)}")
    if removed:
        problems.append(f"gone from __all__: {', '.join(removed)}")
    if len(names) != len(set(names)):
        problems.append("__all__ lists a name twice")
    if snapshot != sorted(set(snapshot)):
        problems.append("the snapshot is not sorted, or lists a name twice")
    if not problems:
        return ""
    where = snapshot_path(module.__name__).relative_to(_ROOT)
    return (
        f"{module.__name__}'s public surface differs from {where}: "
        f"{'; '.join(problems)}. If the change is deliberate, change the snapshot too."
    )
