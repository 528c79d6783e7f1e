"""The egress proxy's wheelhouse: a wheel of every locked requirement, offline-ready.

From the shared wheel pool (downloaded on a miss); a requirement that has no wheel for
the proxy's CPython (pyperclip) is built from its hash-checked source distribution on
the controller's side, and the requirements file pins those to the bytes built.
"""

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.inputs import BuildInputs
from beephost_controller.images.keys import sha256_file
from beephost_controller.images.lockfile import BuiltWheel, LockedRequirement
from beephost_controller.images.wheelhouse import fill_pool, link_or_copy, pool_index

logger = logging.getLogger(__name__)

#: The proxy's CPython: Debian bookworm's python3 (mitmproxy 11 is the newest for it).
PROXY_PYTHON = "3.11"
#: The proxy's files in the repository, and its lock.
PROXY_DIR = "egress-proxy"
PROXY_LOCK = f"{PROXY_DIR}/requirements.lock"


class SourceWheelTool(Protocol):
    """Builds a wheel from a hash-locked source distribution: ``UvTools``."""

    def wheel_from_source(self, line: str, outdir: Path) -> Path:
        """Download ``line``'s sdist (hash-checked) and build it into ``outdir``."""
        ...


def _built_from_source(store: Path, requirement: LockedRequirement) -> Path | None:
    # <store>/<sdist sha256>/<the wheel built from it>
    for digest in requirement.hashes:
        folder = store / digest.removeprefix("sha256:")
        wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
        if wheels:
            return wheels[0]
    return None


def _build_from_source(
    store: Path, requirement: LockedRequirement, source: SourceWheelTool
) -> Path:
    folder = store / requirement.hashes[0].removeprefix("sha256:")
    logger.info("building %s from its source distribution", requirement.name)
    wheel = source.wheel_from_source(requirement.line(marker=False), folder)
    if not wheel.name.endswith("-none-any.whl"):
        wheel.unlink()
        raise BackendImageError(
            f"{requirement.name}=={requirement.version} has no wheel and its source "
            f"builds a platform wheel ({wheel.name}): only pure-Python sources are "
            "built on the controller's side"
        )
    return wheel


def proxy_wheels(
    requirements: Sequence[LockedRequirement],
    inputs: BuildInputs,
    source: SourceWheelTool,
    target: Path,
) -> list[BuiltWheel]:
    """Put a wheel of every locked requirement into ``target``.

    From the shared pool (downloaded on a miss); a requirement with no wheel for
    CPython 3.11 on manylinux x86-64 is built from its source distribution, kept under
    ``<cache>/wheels/from-source/<sdist sha256>/``.

    Returns:
        The wheels built from source (their hashes are not the lock's: the caller pins
        the bytes built).

    Raises:
        BackendImageError: A requirement has neither a wheel nor a pure-Python sdist
            with a locked hash.
    """
    pool = inputs.cache_dir / "wheels" / f"cp{PROXY_PYTHON.replace('.', '')}"
    store = inputs.cache_dir / "wheels" / "from-source"
    pool.mkdir(parents=True, exist_ok=True)
    target.mkdir(parents=True, exist_ok=True)
    tools = inputs.tools
    index = pool_index(pool)
    built = {
        r.name: wheel
        for r in requirements
        if (wheel := _built_from_source(store, r)) is not None
    }
    missing = [
        r
        for r in requirements
        if r.name not in built and not any(h in index for h in r.hashes)
    ]
    if missing:
        # One hash: only a wheel, or only a source distribution (pyperclip). The
        # others in one download; each of these alone, from source if it has to.
        single = [r for r in missing if len(r.hashes) == 1]
        several = [r for r in missing if len(r.hashes) > 1]
        try:
            fill_pool(several, PROXY_PYTHON, pool, tools)
            alone = single
        except BackendImageError as exc:
            logger.info("one by one, as a download of them all failed: %s", exc)
            alone = missing
        for requirement in alone:
            try:
                fill_pool([requirement], PROXY_PYTHON, pool, tools)
            except BackendImageError:
                built[requirement.name] = _build_from_source(store, requirement, source)
    for wheel in fill_pool(
        [r for r in requirements if r.name not in built], PROXY_PYTHON, pool, tools
    ).values():
        link_or_copy(wheel, target / wheel.name)
    ours: list[BuiltWheel] = []
    for name, wheel in sorted(built.items()):
        link_or_copy(wheel, target / wheel.name)
        version = next(r.version for r in requirements if r.name == name)
        ours.append(BuiltWheel(name, version, target / wheel.name, sha256_file(wheel)))
    return ours


def pinned_lines(wheels: Iterable[BuiltWheel]) -> list[str]:
    return [
        f"{wheel.name}=={wheel.version} --hash=sha256:{wheel.sha256}"
        for wheel in sorted(wheels, key=lambda wheel: wheel.name)
    ]


def render_proxy_requirements(
    requirements: Sequence[LockedRequirement], from_source: Sequence[BuiltWheel]
) -> str:
    """``requirements.txt``: the lock's lines, those built from source pinned to the
    bytes built."""
    rebuilt = {wheel.name for wheel in from_source}
    lines = [
        "# Generated by beephost_controller.images.egress_proxy from",
        f"# {PROXY_LOCK}: installed offline with --require-hashes.",
        *(r.line() for r in requirements if r.name not in rebuilt),
        *pinned_lines(from_source),
    ]
    return "\n".join(lines) + "\n"
