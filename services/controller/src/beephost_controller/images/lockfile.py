"""Locked requirements: ``uv export`` and ``uv pip compile`` output as typed pins."""

import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from beephost_controller.images.errors import BackendImageError

_PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*(.*?))?\s*$")
_HASH_RE = re.compile(r"--hash=(sha256:[0-9a-f]{64})")
#: ``name[extras] @ url ; marker``: a direct reference (PEP 508 wants a space before ';').
_URL_RE = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*@\s*(\S+)(?:\s+;\s*(.*?))?\s*$"
)
_WHEEL_RE = re.compile(r"^([A-Za-z0-9_.]+)-([^-]+)-[^-]+-[^-]+-[^-]+\.whl$")


@dataclass(frozen=True)
class LockedRequirement:
    """One ``name==version`` line of ``uv export``, with its marker and hashes.

    ``url``: where a direct reference's wheel is (``name @ url`` in the lock); it is
    downloaded from there, and installed offline as ``name==version`` like any other.
    """

    name: str
    version: str
    marker: str | None
    hashes: tuple[str, ...]
    url: str | None = None

    def line(self, *, marker: bool = True) -> str:
        """The requirement as one hash-locked requirements.txt line."""
        return self._with(f"{self.name}=={self.version}", marker=marker)

    def source(self, *, marker: bool = True) -> str:
        """The line to download it with: its URL if a direct reference, else ``line``."""
        if self.url is None:
            return self.line(marker=marker)
        return self._with(f"{self.name} @ {self.url}", marker=marker)

    def _with(self, head: str, *, marker: bool) -> str:
        if marker and self.marker:
            head += f" ; {self.marker}"
        return head + "".join(f" --hash={digest}" for digest in self.hashes)


@dataclass(frozen=True)
class LockedExport:
    """``uv export`` of one backend: workspace members and third-party pins."""

    members: tuple[str, ...]
    requirements: tuple[LockedRequirement, ...]


@dataclass(frozen=True)
class BuiltWheel:
    """One of our packages, built as a wheel into the wheelhouse."""

    name: str
    version: str
    path: Path
    sha256: str


def parse_export(text: str) -> LockedExport:
    """Parse ``uv export --no-editable --no-header --no-annotate`` output.

    Workspace members come out as ``./path`` lines; everything else is a pinned
    ``name==version [; marker]`` with ``--hash`` continuation lines.

    Raises:
        BackendImageError: A requirement is not pinned or has no hash.
    """
    members: list[str] = []
    requirements: list[LockedRequirement] = []
    # Join continuation lines: one logical line per requirement.
    logical = re.sub(r"\\\s*\n", " ", text)
    for raw in logical.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("./", "../", "-e ")):
            members.append(line.removeprefix("-e ").strip().removeprefix("./"))
            continue
        hashes = tuple(_HASH_RE.findall(line))
        head = _HASH_RE.sub("", line).strip()
        direct = _URL_RE.match(head)
        if direct is not None:
            requirements.append(_direct_wheel(direct, hashes))
            continue
        match = _PIN_RE.match(head)
        if match is None:
            raise BackendImageError(f"not a pinned requirement: {line!r}")
        if not hashes:
            raise BackendImageError(f"requirement without a hash: {line!r}")
        requirements.append(
            LockedRequirement(
                name=match.group(1).lower().replace("_", "-"),
                version=match.group(2),
                marker=match.group(3) or None,
                hashes=tuple(sorted(hashes)),
            )
        )
    requirements.sort(key=lambda requirement: requirement.name)
    return LockedExport(
        members=tuple(sorted(members)), requirements=tuple(requirements)
    )


def _direct_wheel(match: re.Match[str], hashes: tuple[str, ...]) -> LockedRequirement:
    """A locked ``name @ url``: only a hashed wheel, since images are built offline.

    Raises:
        BackendImageError: Not a wheel URL (a source distribution or VCS checkout
            would need a build), another project's wheel, or no hash.
    """
    name, url, marker = match.group(1), match.group(2), match.group(3) or None
    shown = f"{name} @ {url}"
    filename = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    wheel = _WHEEL_RE.match(filename)
    if "+" in url.partition(":")[0] or wheel is None:
        raise BackendImageError(
            f"{shown}: only a direct reference to a wheel (a URL of a .whl file) can "
            "be installed: environments are built offline, where a source "
            "distribution or a VCS checkout cannot be built"
        )
    wheel_name, version = wheel_name_version(filename)
    if canonicalize_name(wheel_name) != canonicalize_name(name):
        raise BackendImageError(f"{shown}: the wheel is not {name}'s")
    if not hashes:
        raise BackendImageError(f"{shown}: a direct reference without a hash")
    return LockedRequirement(
        name=name.lower().replace("_", "-"),
        version=version,
        marker=marker,
        hashes=tuple(sorted(hashes)),
        url=url,
    )


def wheel_name_version(filename: str) -> tuple[str, str]:
    """Normalized project name and version from a wheel file name.

    Raises:
        BackendImageError: Not a wheel file name.
    """
    match = _WHEEL_RE.match(filename)
    if match is None:
        raise BackendImageError(f"not a wheel file name: {filename!r}")
    return match.group(1).lower().replace("_", "-"), match.group(2)


def lock_requirements(lock_text: str) -> tuple[LockedRequirement, ...]:
    """The pinned, hashed requirements of a ``uv pip compile --generate-hashes`` lock."""
    if not any(
        line.strip() and not line.lstrip().startswith("#")
        for line in lock_text.splitlines()
    ):
        return ()
    return parse_export(lock_text).requirements


def render_requirements(
    requirements: Sequence[LockedRequirement], wheels: Sequence[BuiltWheel]
) -> str:
    """The wheelhouse's ``requirements.txt``: every line pinned and hash-locked.

    Our own wheels are pinned to the exact bytes built for this image.
    """
    lines = [
        "# Generated by beephost_controller.images (a backend image): installed with",
        "# --offline --no-index --require-hashes from this directory.",
    ]
    lines += [requirement.line() for requirement in requirements]
    lines += [
        f"{wheel.name}=={wheel.version} --hash=sha256:{wheel.sha256}"
        for wheel in sorted(wheels, key=lambda wheel: wheel.name)
    ]
    return "\n".join(lines) + "\n"


def render_sdk_requirements(wheels: Sequence[BuiltWheel]) -> str:
    """``sdk.txt``: the SDK's own wheels, pinned to the exact bytes built."""
    lines = [
        "# Generated by beephost_controller.images (an admin environment): installed with",
        "# --no-deps after requirements.txt (which holds their dependencies).",
    ]
    lines += [
        f"{wheel.name}=={wheel.version} --hash=sha256:{wheel.sha256}"
        for wheel in sorted(wheels, key=lambda wheel: wheel.name)
    ]
    return "\n".join(lines) + "\n"
