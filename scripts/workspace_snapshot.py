"""A snapshot of what image builds read (lock, members, Dockerfiles, the egress
proxy's lock and scripts), for the e2e
tests and the benchmarks: other work in the same tree (edits, caches) cannot change
the images mid-run."""

import shutil
from pathlib import Path

_SNAPSHOT_IGNORE = shutil.ignore_patterns(
    ".venv", "__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache", ".ruff_cache",
    "build", "dist", "*.egg-info",
)  # fmt: skip


def snapshot_workspace(source: Path, target: Path) -> Path:
    """Copy what image builds read (lock, members, Dockerfiles, egress-proxy/) to
    ``target``."""
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock", ".python-version", ".dockerignore"):
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    for directory in ("packages", "services", "egress-proxy"):
        shutil.copytree(source / directory, target / directory, ignore=_SNAPSHOT_IGNORE)
    return target
