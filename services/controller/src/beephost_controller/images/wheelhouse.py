"""The wheelhouse: the pool of downloaded wheels, and the tools it needs.

An image build never reaches a package index: the host fills a wheelhouse first
(third-party wheels pinned and hash-locked by the lock, downloaded for the image's
CPython into a pool shared by every build; our workspace packages built with
``uv build``), and the image installs from it offline.
"""

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.keys import sha256_file
from beephost_controller.images.lockfile import (
    BuiltWheel,
    LockedRequirement,
    wheel_name_version,
)

logger = logging.getLogger(__name__)


class WheelhouseTools(Protocol):
    """The host-side tools a wheelhouse needs: ``UvTools``, or a fake in tests."""

    def export(self, workspace: Path, package: str, *also: str) -> str:
        """``uv export`` text for ``package`` (and the packages ``also`` names, one
        closure): members as ``./path`` lines, hashed pins."""
        ...

    def build_wheel(self, workspace: Path, member: str, outdir: Path) -> Path:
        """Build the workspace member at ``member`` (relative path) into ``outdir``."""
        ...

    def download(self, lines: Sequence[str], python_minor: str, dest: Path) -> None:
        """Download hash-locked wheels for CPython ``python_minor`` on manylinux x86_64."""
        ...

    def installer(self) -> tuple[str, Path | None]:
        """A description of the in-image installer and the uv binary to copy, if any.

        ``None`` means the image installs with the base's bundled pip instead.
        """
        ...


def pool_index(pool: Path) -> dict[str, Path]:
    # sha256 -> wheel, remembered in a small index keyed by name, size and mtime so a
    # warm pool is not re-hashed on every build.
    index_file = pool / ".index.json"
    try:
        cached: dict[str, list[object]] = json.loads(index_file.read_text())
    except (OSError, ValueError):
        cached = {}
    fresh: dict[str, list[object]] = {}
    by_hash: dict[str, Path] = {}
    for wheel in sorted(pool.glob("*.whl")):
        stat = wheel.stat()
        entry = cached.get(wheel.name)
        if entry and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
            digest = str(entry[2])
        else:
            digest = sha256_file(wheel)
        fresh[wheel.name] = [stat.st_size, stat.st_mtime_ns, digest]
        by_hash[f"sha256:{digest}"] = wheel
    if fresh != cached:
        index_file.write_text(json.dumps(fresh, sort_keys=True))
    return by_hash


def fill_pool(
    requirements: Sequence[LockedRequirement],
    python_minor: str,
    pool: Path,
    tools: WheelhouseTools,
) -> dict[str, Path]:
    """Make sure the pool has a wheel for every requirement; return name -> wheel."""
    pool.mkdir(parents=True, exist_ok=True)

    def lookup(index: Mapping[str, Path]) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for requirement in requirements:
            for digest in requirement.hashes:
                if digest in index:
                    found[requirement.name] = index[digest]
                    break
        return found

    found = lookup(pool_index(pool))
    missing = [r for r in requirements if r.name not in found]
    required = [r.source() for r in missing if not r.marker]
    if required:
        logger.info("downloading %d wheels for CPython %s", len(required), python_minor)
        tools.download(required, python_minor, pool)
    for requirement in (r for r in missing if r.marker):
        # pip evaluates markers against the host, not the image: download each marked
        # requirement on its own, marker stripped. One with no wheel for this target is
        # for another platform; the in-image install (which evaluates markers against
        # the real interpreter) fails loudly if it was needed after all.
        try:
            tools.download([requirement.source(marker=False)], python_minor, pool)
        except BackendImageError as exc:
            logger.info(
                "no wheel of %s here (%s): %s",
                requirement.name,
                requirement.marker,
                exc,
            )
    found = lookup(pool_index(pool))
    still = [r.name for r in missing if not r.marker and r.name not in found]
    if still:
        raise BackendImageError(
            f"no wheel with a locked hash for {', '.join(still)} (CPython {python_minor})"
        )
    return found


def link_or_copy(source: Path, target: Path) -> None:
    # A hard link costs nothing; another filesystem (a volume) needs a copy.
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def build_member_wheel(
    workspace: Path, member: str, outdir: Path, tools: WheelhouseTools
) -> BuiltWheel:
    """Build one workspace member's wheel into ``outdir``, with its hash."""
    path = tools.build_wheel(workspace, member, outdir)
    name, version = wheel_name_version(path.name)
    return BuiltWheel(name, version, path, sha256_file(path))


def pool_wheels(
    requirements: Sequence[LockedRequirement],
    python_minor: str,
    *,
    cache_dir: Path,
    target: Path,
    tools: WheelhouseTools,
) -> None:
    """Put a wheel of every requirement for CPython ``python_minor`` into ``target``.

    From the pool ``<cache_dir>/wheels/cpXY`` (downloaded there on a miss), linked.

    Raises:
        BackendImageError: A wheel with a locked hash cannot be had.
    """
    pool = cache_dir / "wheels" / f"cp{python_minor.replace('.', '')}"
    target.mkdir(parents=True, exist_ok=True)
    for wheel in fill_pool(requirements, python_minor, pool, tools).values():
        link_or_copy(wheel, target / wheel.name)
