"""Backend images: each backend's Dockerfile built on a pinned-CPython base, offline.

An image build never reaches a package index: the host prepares a wheelhouse first
(third-party wheels pinned and hash-locked by ``uv.lock``, downloaded for the base
image's CPython; our workspace packages built as wheels with ``uv build``), and the
Dockerfile installs from it with ``--network=none``. The build context is a small
directory shaped like the repository root (``.dockerignore``, the backend's
``Dockerfile``, ``build/wheelhouse/<kind>-backend/``), so the same Dockerfile builds
from the real repository root with ``docker build`` too.

Images are content-addressed: the tag ``<repository>:<X.Y>-<key>`` carries a hash of
the base image id, the locked requirements, our packages' source trees, the
Dockerfile and ``.dockerignore``, the installer and the extra labels. A call whose
inputs did not change finds the tag and does no work. ``<repository>:<X.Y>`` follows
the newest build.

The controller is built by the same machinery as a fourth image kind (``controller``:
``services/controller/Dockerfile``, ``beephost/controller:<X.Y>-<key>``, moving tags
``:<X.Y>`` and ``:local``). It is no backend: ``BACKEND_KINDS`` (what environment
images carry and ``code_version`` covers) stays the three servers. Its image also
carries the workspace sources environment builds read (``CONTROLLER_SOURCES``, in
``/opt/beephost-src``), so their hash is part of its key.

Example:
    >>> base = ensure_base_image("3.11", Settings())
    >>> image = ensure_backend_image("pipe", base, runtime, workspace=Path("."))
    >>> image.tag
    'beephost/pipe-backend:3.11-0f3c9a1d2b4e6f70'
"""

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, get_args

from packaging.utils import canonicalize_name

from beephost_controller.ports import ContainerRuntime, ContainerRuntimeError
from beephost_controller.runtime.base_images import (
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_PYTHON_MINOR,
    LABEL_PYTHON_VERSION,
    BaseImage,
    check_label_keys,
)
from beephost_controller.runtime.tool_env import tool_environment

logger = logging.getLogger(__name__)

BackendKind = Literal["pipe", "http", "rpc"]
BACKEND_KINDS: tuple[BackendKind, ...] = get_args(BackendKind)
#: Every kind this module builds: the three backends and the controller.
ImageKind = Literal["pipe", "http", "rpc", "controller"]
IMAGE_KINDS: tuple[ImageKind, ...] = get_args(ImageKind)
CONTROLLER: Literal["controller"] = "controller"

LABEL_BACKEND = "io.beephost.backend"
LABEL_CODE_VERSION = "io.beephost.code.version"
LABEL_BUILD_KEY = "io.beephost.build.key"
LABEL_BASE_IMAGE = "io.beephost.base.image"
LABEL_INSTALLER = "io.beephost.installer"
KIND_BACKEND_IMAGE = "backend-image"
KIND_CONTROLLER_IMAGE = "controller-image"
#: The Dockerfiles' build stage labels itself so; its intermediate images (the legacy
#: builder keeps them as cache) are removed by build key after every build. The
#: controller's Dockerfile labels its build stage the same way.
KIND_BACKEND_BUILD = "backend-build"

#: The server's numeric user and group inside the images (Dockerfile ``USER``).
SERVER_UID = 10001
#: Where the server's virtualenv lives in the images.
SERVER_PREFIX = "/opt/beephost"
#: Workspace files and directories the controller image carries (what environment
#: image builds read: the lock, every member's sources, the backends' Dockerfiles),
#: relative to the repository root, and where they go in the image.
CONTROLLER_SOURCES = (
    "pyproject.toml",
    "uv.lock",
    ".python-version",
    ".dockerignore",
    "packages",
    "services",
)
CONTROLLER_SOURCE_PREFIX = "/opt/beephost-src"
#: The controller's second moving tag, the one compose.yaml names.
CONTROLLER_LOCAL_TAG = "local"
#: Bumped when the wheelhouse layout or the way images are assembled changes: every
#: build key (and so every tag) changes with it.
LAYOUT_VERSION = "1"
#: pip only downloads here (uv has no download command); pinned, run through uv.
PIP_VERSION = "25.3"
#: Every manylinux tag up to glibc 2.36 (bookworm; trixie has 2.41): all three legacy
#: spellings are needed, or grpcio and new numpy wheels are missed.
MANYLINUX_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)),
    "manylinux2014_x86_64",
)

_MINOR_RE = re.compile(r"^3\.(\d{1,2})$")
_PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*(.*?))?\s*$")
_HASH_RE = re.compile(r"--hash=(sha256:[0-9a-f]{64})")
#: ``name[extras] @ url ; marker``: a direct reference (PEP 508 wants a space before ';').
_URL_RE = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*@\s*(\S+)(?:\s+;\s*(.*?))?\s*$"
)
_WHEEL_RE = re.compile(r"^([A-Za-z0-9_.]+)-([^-]+)-[^-]+-[^-]+-[^-]+\.whl$")
_VAR_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
#: Settings.model_config's env_prefix: UvTools reads CA_BUNDLE and INDEX_URL under it.
_SETTINGS_PREFIX = "BEEPHOST_CONTROLLER_"
_SOURCE_EXCLUDED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache"})
_SOURCE_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
#: Left out of the controller's copied sources (as .dockerignore leaves them out of a
#: build from the repository root; ``build`` also below it).
_CONTEXT_EXCLUDED_DIRS = frozenset(
    {
        ".git",
        ".venv",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".cache",
        "dist",
        "build",
        "node_modules",
    }
)


class BackendImageError(Exception):
    """A backend image could not be prepared or built."""


@dataclass(frozen=True)
class BackendImage:
    """A local backend (or controller) image.

    Attributes:
        kind: ``"pipe"``, ``"http"``, ``"rpc"`` or ``"controller"``.
        tag: The content-addressed ``<repository>:<X.Y>-<key>``.
        alias: ``<repository>:<X.Y>``, moved to the newest build.
        image_id: The engine's image id.
        python_version: Exact CPython version of the base image.
        code_version: Hash of our packages' source trees in the image.
        build_key: The full hash the tag is derived from.
        base_image_id: The base image it was built on.
        built: Whether this call built it; ``False`` on a cache hit.
        size: Image size in bytes, as the engine reports it.
        seconds: Wall time of this call.
        aliases: Every moving tag, ``alias`` first (the controller's adds
            ``<repository>:local``).
    """

    kind: ImageKind
    tag: str
    alias: str
    image_id: str
    python_version: str
    code_version: str
    build_key: str
    base_image_id: str
    built: bool
    size: int = 0
    seconds: float = 0.0
    aliases: tuple[str, ...] = ()


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


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: upper-case name, raw arguments, stage index."""

    name: str
    args: str
    stage: int


@dataclass(frozen=True)
class BuildPlan:
    """Everything that decides a backend image, hashed into its build key.

    ``sources``: the hash of the workspace sources the controller image carries
    (``None`` for the backends, whose keys then are what they always were).
    """

    kind: ImageKind
    python_minor: str
    base_image_id: str
    dockerfile: str
    dockerignore: str
    requirements: tuple[str, ...]
    members: Mapping[str, str]
    installer: str
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    sources: str | None = None

    @property
    def key(self) -> str:
        return build_key(self)

    @property
    def code_version(self) -> str:
        return code_version(self.members)


class WheelhouseTools(Protocol):
    """The host-side tools a wheelhouse needs: ``UvTools``, or a fake in tests."""

    def export(self, workspace: Path, package: str) -> str:
        """``uv export`` text for ``package``: members as ``./path`` lines, hashed pins."""
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


# -- pure logic -----------------------------------------------------------------------


def backend_kind(kind: str) -> BackendKind:
    """Validate a backend kind.

    Raises:
        BackendImageError: Not one of ``pipe``, ``http``, ``rpc``.
    """
    for known in BACKEND_KINDS:
        if kind == known:
            return known
    raise BackendImageError(
        f"unknown backend {kind!r}; expected one of {', '.join(BACKEND_KINDS)}"
    )


def image_kind(kind: str) -> ImageKind:
    """Validate an image kind: a backend, or ``controller``.

    Raises:
        BackendImageError: Not one of ``pipe``, ``http``, ``rpc``, ``controller``.
    """
    for known in IMAGE_KINDS:
        if kind == known:
            return known
    raise BackendImageError(
        f"unknown backend {kind!r}; expected one of {', '.join(IMAGE_KINDS)}"
    )


def _service(kind: ImageKind) -> str:
    # The service directory (and package suffix): services/<kind>-backend, or
    # services/controller.
    return CONTROLLER if kind == CONTROLLER else f"{kind}-backend"


def backend_package(kind: ImageKind) -> str:
    """The workspace package (and console script) of a backend or the controller."""
    return f"beephost-{_service(kind)}"


def dockerfile_path(kind: ImageKind) -> str:
    """The image's Dockerfile, relative to the repository root."""
    return f"services/{_service(kind)}/Dockerfile"


def wheelhouse_path(kind: ImageKind) -> str:
    """Where the Dockerfile expects the wheelhouse, relative to the context root."""
    return f"build/wheelhouse/{_service(kind)}"


def default_repository(kind: ImageKind) -> str:
    """The local repository: ``beephost/<kind>-backend`` or ``beephost/controller``."""
    return f"beephost/{_service(kind)}"


def image_label_kind(kind: ImageKind) -> str:
    """The ``io.beephost.kind`` label of the image: backend or controller image."""
    return KIND_CONTROLLER_IMAGE if kind == CONTROLLER else KIND_BACKEND_IMAGE


def python_minor_of(version: str) -> str:
    """``"3.11.2"`` → ``"3.11"``.

    Raises:
        BackendImageError: Not a CPython 3 version.
    """
    minor = ".".join(version.split(".")[:2])
    if not _MINOR_RE.match(minor):
        raise BackendImageError(f"not a CPython version: {version!r}")
    return minor


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


def render_requirements(
    requirements: Sequence[LockedRequirement], wheels: Sequence[BuiltWheel]
) -> str:
    """The wheelhouse's ``requirements.txt``: every line pinned and hash-locked.

    Our own wheels are pinned to the exact bytes built for this image.
    """
    lines = [
        "# Generated by beephost_controller.runtime.backend_images: installed with",
        "# --offline --no-index --require-hashes from this directory.",
    ]
    lines += [requirement.line() for requirement in requirements]
    lines += [
        f"{wheel.name}=={wheel.version} --hash=sha256:{wheel.sha256}"
        for wheel in sorted(wheels, key=lambda wheel: wheel.name)
    ]
    return "\n".join(lines) + "\n"


def code_version(members: Mapping[str, str]) -> str:
    """One short hash over our packages' source-tree hashes."""
    payload = json.dumps(dict(sorted(members.items())), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def build_key(plan: BuildPlan) -> str:
    """The hex sha256 that names an image: equal inputs give equal keys."""
    payload: dict[str, object] = {
        "layout": LAYOUT_VERSION,
        "kind": plan.kind,
        "python": plan.python_minor,
        "base": plan.base_image_id,
        "dockerfile": hashlib.sha256(plan.dockerfile.encode()).hexdigest(),
        "dockerignore": hashlib.sha256(plan.dockerignore.encode()).hexdigest(),
        "requirements": list(plan.requirements),
        "members": dict(sorted(plan.members.items())),
        "installer": plan.installer,
        "labels": dict(sorted(plan.extra_labels.items())),
    }
    if plan.sources is not None:
        # Only the controller carries sources: the backends' payload (and so every
        # backend tag) is unchanged by this kind.
        payload["sources"] = plan.sources
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


def image_tag(repository: str, python_minor: str, key: str) -> str:
    """The content-addressed tag: ``<repository>:<X.Y>-<first 16 hex of key>``."""
    return f"{repository}:{python_minor}-{key[:16]}"


def alias_tag(repository: str, python_minor: str) -> str:
    """The moving tag of the newest build: ``<repository>:<X.Y>``."""
    return f"{repository}:{python_minor}"


def alias_tags(kind: ImageKind, repository: str, python_minor: str) -> tuple[str, ...]:
    """Every moving tag of a kind: ``<repository>:<X.Y>``, and ``<repository>:local``
    for the controller (what compose.yaml runs, whatever the CPython)."""
    if kind == CONTROLLER:
        return (
            alias_tag(repository, python_minor),
            f"{repository}:{CONTROLLER_LOCAL_TAG}",
        )
    return (alias_tag(repository, python_minor),)


def backend_labels(
    plan: BuildPlan, *, python_version: str, base_ref: str
) -> dict[str, str]:
    """Labels of a backend image (the Dockerfile declares the same, from build args).

    The controller's image has ``io.beephost.kind=controller-image`` and no
    ``io.beephost.backend``.
    """
    kind_labels = {LABEL_KIND: image_label_kind(plan.kind)}
    if plan.kind != CONTROLLER:
        kind_labels[LABEL_BACKEND] = plan.kind
    return {
        **plan.extra_labels,
        LABEL_MANAGED: "true",
        **kind_labels,
        LABEL_PYTHON_MINOR: plan.python_minor,
        LABEL_PYTHON_VERSION: python_version,
        LABEL_CODE_VERSION: plan.code_version,
        LABEL_BUILD_KEY: plan.key,
        LABEL_BASE_IMAGE: plan.base_image_id,
        LABEL_INSTALLER: plan.installer,
        "org.opencontainers.image.title": backend_package(plan.kind),
        "org.opencontainers.image.version": plan.code_version,
        "org.opencontainers.image.vendor": "Beep Python Host",
        "org.opencontainers.image.base.name": base_ref,
    }


def build_args(
    plan: BuildPlan, *, python_version: str, base_ref: str
) -> dict[str, str]:
    """The ``ARG`` values the backend Dockerfiles declare."""
    return {
        "BASE_IMAGE": base_ref,
        "WHEELHOUSE": wheelhouse_path(plan.kind),
        "BUILD_KEY": plan.key,
        "PYTHON_VERSION": python_version,
        "CODE_VERSION": plan.code_version,
    }


def is_current(labels: Mapping[str, str], plan: BuildPlan) -> bool:
    """Whether an image with ``labels`` is the one ``plan`` would build."""
    return (
        labels.get(LABEL_MANAGED) == "true"
        and labels.get(LABEL_KIND) == image_label_kind(plan.kind)
        and labels.get(LABEL_BUILD_KEY) == plan.key
    )


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """Dockerfile variable expansion of ``$VAR`` and ``${VAR}`` (unknown: empty)."""
    return _VAR_RE.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), text)


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions: comments dropped, continuations joined.

    Instructions before the first ``FROM`` (global ``ARG``s) have stage ``-1``.
    """
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        line = (pending + stripped).strip()
        pending = ""
        if not line:
            continue
        name, _, args = line.partition(" ")
        name = name.upper()
        if name == "FROM":
            stage += 1
        instructions.append(Instruction(name=name, args=args.strip(), stage=stage))
    if pending.strip():
        name, _, args = pending.strip().partition(" ")
        instructions.append(Instruction(name=name.upper(), args=args, stage=stage))
    return instructions


def parse_label_args(args: str, variables: Mapping[str, str]) -> dict[str, str]:
    """``LABEL k=v k2="v 2"`` arguments as a dict, after variable expansion."""
    labels: dict[str, str] = {}
    for word in shlex.split(substitute(args, variables)):
        key, sep, value = word.partition("=")
        if not sep:
            raise BackendImageError(f"LABEL without '=': {word!r}")
        labels[key] = value
    return labels


def check_dockerfile(text: str) -> list[str]:
    """What a backend Dockerfile must respect to build offline with the legacy builder.

    Returns:
        The problems found; empty when the Dockerfile is fine.
    """
    problems: list[str] = []
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if re.match(r"#\s*syntax\s*=", first, re.IGNORECASE):
        problems.append("a '# syntax=' line makes BuildKit pull a frontend image")
    instructions = dockerfile_instructions(text)
    stages = max((instruction.stage for instruction in instructions), default=-1) + 1
    if stages < 2:
        problems.append("needs a build stage and a final stage")
    for instruction in instructions:
        flags = instruction.args.split()[:3]
        if instruction.name == "RUN" and any(f.startswith("--mount") for f in flags):
            problems.append("RUN --mount needs BuildKit")
    final = [i for i in instructions if i.stage == stages - 1]
    users = [i.args for i in final if i.name == "USER"]
    if not users or not re.match(r"^[1-9][0-9]*(:[0-9]+)?$", users[-1]):
        problems.append("the final stage must end as a numeric non-root USER")
    if not any(i.name == "HEALTHCHECK" for i in final):
        problems.append("the final stage needs a HEALTHCHECK")
    if any(i.name == "COPY" and "/wheels" in i.args for i in final):
        problems.append("the wheelhouse must stay in the build stage")
    return problems


# -- files ----------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_tree_hash(member: Path) -> str:
    """Hash of what goes into a member's wheel: ``pyproject.toml``, READMEs, ``src/``.

    Byte caches and tool caches are ignored, so running the code does not change it.

    Raises:
        BackendImageError: ``member`` has no ``pyproject.toml``.
    """
    if not (member / "pyproject.toml").is_file():
        raise BackendImageError(f"{member} is not a package: no pyproject.toml")
    files = [member / "pyproject.toml", *sorted(member.glob("README*"))]
    for root, dirs, names in os.walk(member / "src"):
        dirs[:] = sorted(d for d in dirs if d not in _SOURCE_EXCLUDED_DIRS)
        files += [
            Path(root) / name
            for name in sorted(names)
            if not name.endswith(_SOURCE_EXCLUDED_SUFFIXES)
        ]
    digest = hashlib.sha256()
    for path in files:
        if not path.is_file():
            continue
        digest.update(path.relative_to(member).as_posix().encode() + b"\0")
        digest.update(sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def controller_source_files(workspace: Path) -> list[str]:
    """The files of ``CONTROLLER_SOURCES`` the controller image carries, sorted,
    relative to ``workspace`` (POSIX paths): caches, virtualenvs and build outputs
    left out.

    Raises:
        BackendImageError: One of ``CONTROLLER_SOURCES`` is missing.
    """
    files: list[str] = []
    for name in CONTROLLER_SOURCES:
        top = workspace / name
        if top.is_file():
            files.append(name)
            continue
        if not top.is_dir():
            raise BackendImageError(
                f"the controller image carries {name}, which {workspace} lacks"
            )
        for root, dirs, names in os.walk(top):
            dirs[:] = sorted(
                d
                for d in dirs
                if d not in _CONTEXT_EXCLUDED_DIRS and not d.endswith(".egg-info")
            )
            for filename in sorted(names):
                path = Path(root) / filename
                if filename.endswith(_SOURCE_EXCLUDED_SUFFIXES) or not path.is_file():
                    continue
                files.append(path.relative_to(workspace).as_posix())
    return sorted(files)


def controller_sources_hash(workspace: Path) -> str:
    """Hash of every file the controller image carries in ``/opt/beephost-src``.

    Raises:
        BackendImageError: One of ``CONTROLLER_SOURCES`` is missing.
    """
    digest = hashlib.sha256()
    for relative in controller_source_files(workspace):
        digest.update(relative.encode() + b"\0")
        digest.update(sha256_file(workspace / relative).encode() + b"\n")
    return digest.hexdigest()


def copy_controller_sources(workspace: Path, context: Path) -> int:
    """Copy the controller's sources into a build context shaped like the repository.

    Returns:
        The number of files copied.

    Raises:
        BackendImageError: One of ``CONTROLLER_SOURCES`` is missing.
    """
    files = controller_source_files(workspace)
    for relative in files:
        target = context / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(workspace / relative, target)
    return len(files)


def find_workspace(start: Path | None = None) -> Path:
    """The uv workspace root at or above ``start`` (the current directory).

    Raises:
        BackendImageError: No ``pyproject.toml`` with ``[tool.uv.workspace]`` above.
    """
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text():
            return directory
    raise BackendImageError(f"no uv workspace at or above {here}")


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # Two builds (a test and scripts/build-images) share the wheel pool and the tags;
    # one flock in the cache directory serialises them.
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_linux_executable(path: Path) -> bool:
    # The uv binary is copied into a Linux image: a macOS host's uv, or a pyenv shim
    # script, would not run there.
    try:
        with path.open("rb") as stream:
            header = stream.read(20)
    except OSError:
        return False
    # ELF, 64-bit, little-endian, e_machine 0x3e: x86-64 (the only image platform).
    return header[:4] == b"\x7fELF" and header[4] == 2 and header[18:20] == b"\x3e\x00"


# -- host tools -----------------------------------------------------------------------


def _locked_uv() -> str | None:
    try:
        from uv import find_uv_bin
    except ImportError:
        return None
    try:
        return str(find_uv_bin())
    except FileNotFoundError:
        return None


class UvTools:
    """``WheelhouseTools`` on uv (export, build, pip download through ``uv tool run``).

    Args:
        uv: The uv executable; ``$UV`` (set by ``uv run``) or ``uv`` on ``PATH``.
        timeout: Seconds before one command is abandoned.
        ca_bundle: A CA bundle (PEM) the downloads trust, as the resolver does
            (``SSL_CERT_FILE`` for uv, ``pip --cert``); default
            ``$BEEPHOST_CONTROLLER_CA_BUNDLE`` (the controller's ``ca_bundle``).
        index_url: The package index wheels are downloaded from (pip and the pip uv
            runs); default ``$BEEPHOST_CONTROLLER_INDEX_URL``, else PyPI.
    """

    def __init__(
        self,
        uv: str | None = None,
        timeout: float = 600.0,
        *,
        ca_bundle: str | os.PathLike[str] | None = None,
        index_url: str | None = None,
    ) -> None:
        # The locked uv (the controller's own dependency) first: image build keys
        # include the installer's version, so the host and a containerised controller
        # must use the same one to share backend images.
        found = uv or _locked_uv() or os.environ.get("UV") or shutil.which("uv")
        if not found:
            raise BackendImageError("uv not found: install it (pip install uv)")
        self.uv = found
        self.timeout = timeout
        # The controller builds its UvTools without arguments: the settings' variables
        # are read here, so its downloads honour them like its resolver does.
        bundle = ca_bundle or os.environ.get(f"{_SETTINGS_PREFIX}CA_BUNDLE")
        self.ca_bundle = os.fspath(bundle) if bundle else None
        self.index_url = (
            index_url or os.environ.get(f"{_SETTINGS_PREFIX}INDEX_URL") or None
        )

    def environment(self, *, index: bool = False) -> dict[str, str]:
        """A uv subprocess's environment: ``tool_environment()`` (never ours: no token,
        nothing ``BEEPHOST_*``), plus the CA bundle (and, with ``index``, the index:
        only downloads get it, ``uv export --locked`` keeps the lock's).
        """
        index_url = self.index_url if index else None
        env = tool_environment()
        if self.ca_bundle is not None:
            # uv reads it instead of its bundled roots (UV_NATIVE_TLS is deprecated).
            env["SSL_CERT_FILE"] = self.ca_bundle
        if index_url is not None:
            env["UV_DEFAULT_INDEX"] = index_url
        return env

    def _run(
        self,
        command: Sequence[str],
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        logger.debug("running %s", shlex.join(command))
        try:
            result = subprocess.run(
                list(command),
                cwd=cwd,
                env=dict(env) if env is not None else self.environment(),
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BackendImageError(f"{shlex.join(command)}: {exc}") from exc
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-20:])
            raise BackendImageError(
                f"{shlex.join(command)} failed ({result.returncode}):\n{tail}"
            )
        return result.stdout

    def export(self, workspace: Path, package: str) -> str:
        """``uv export --locked`` of ``package``'s runtime closure (no dev groups).

        Raises:
            BackendImageError: uv failed, e.g. ``uv.lock`` is out of date.
        """
        return self._run(
            [
                self.uv,
                "export",
                "--locked",
                "--no-dev",
                "--no-default-groups",
                "--package",
                package,
                "--no-editable",
                "--no-header",
                "--no-annotate",
                "--format",
                "requirements.txt",
            ],
            cwd=workspace,
        )

    def build_wheel(self, workspace: Path, member: str, outdir: Path) -> Path:
        """``uv build --wheel`` of one member into ``outdir``; returns the wheel.

        Raises:
            BackendImageError: The build failed or produced no single wheel.
        """
        with tempfile.TemporaryDirectory(dir=outdir, prefix=".build-") as scratch:
            self._run(
                [self.uv, "build", "--wheel", "--quiet", "-o", scratch, member],
                cwd=workspace,
            )
            wheels = sorted(Path(scratch).glob("*.whl"))
            if len(wheels) != 1:
                raise BackendImageError(f"uv build {member}: expected one wheel")
            target = outdir / wheels[0].name
            os.replace(wheels[0], target)
        return target

    def download(self, lines: Sequence[str], python_minor: str, dest: Path) -> None:
        """``pip download --only-binary=:all: --require-hashes --no-deps`` for a target.

        Markers are evaluated by pip against the host interpreter, not the target:
        the caller passes only lines without markers (or strips them). The CA bundle
        and index (if any) reach both uv (which fetches pip) and pip.

        Raises:
            BackendImageError: A wheel is missing for the target or a hash mismatches.
        """
        abi = "cp" + python_minor.replace(".", "")
        with tempfile.NamedTemporaryFile(
            "w", suffix=".txt", dir=dest, prefix=".req-", delete=False
        ) as handle:
            handle.write("\n".join(lines) + "\n")
        try:
            command = [
                self.uv,
                "tool",
                "run",
                "--from",
                f"pip=={PIP_VERSION}",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--require-hashes",
                "--only-binary=:all:",
                "--implementation",
                "cp",
                "--python-version",
                python_minor,
                "--abi",
                abi,
                "--abi",
                "abi3",
                "--abi",
                "none",
            ]
            for platform in MANYLINUX_PLATFORMS:
                command += ["--platform", platform]
            if self.ca_bundle is not None:
                command += ["--cert", self.ca_bundle]
            if self.index_url is not None:
                command += ["--index-url", self.index_url]
            command += ["--dest", str(dest), "-r", handle.name]
            self._run(command, env=self.environment(index=True))
        finally:
            Path(handle.name).unlink(missing_ok=True)

    def installer(self) -> tuple[str, Path | None]:
        """``("uv X.Y.Z", path)`` when the host's uv runs in the images, else pip."""
        path = Path(shutil.which(self.uv) or self.uv)
        if not _is_linux_executable(path):
            logger.info(
                "%s is not a Linux x86-64 binary: images install with pip", path
            )
            return "pip (the base image's bundled wheel)", None
        version = self._run([str(path), "--version"]).split()
        return " ".join(version[:2]), path


# -- orchestration --------------------------------------------------------------------


def _pool_index(pool: Path) -> dict[str, Path]:
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


def _fill_pool(
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

    found = lookup(_pool_index(pool))
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
    found = lookup(_pool_index(pool))
    still = [r.name for r in missing if not r.marker and r.name not in found]
    if still:
        raise BackendImageError(
            f"no wheel with a locked hash for {', '.join(still)} (CPython {python_minor})"
        )
    return found


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise BackendImageError(f"cannot read {path}: {exc}") from exc


def plan_backend_image(
    kind: ImageKind,
    base: BaseImage,
    *,
    workspace: Path,
    tools: WheelhouseTools,
    extra_labels: Mapping[str, str] | None = None,
) -> tuple[BuildPlan, LockedExport]:
    """Compute what an image of ``kind`` on ``base`` would be, without building it.

    Raises:
        BackendImageError: The workspace, lock or Dockerfile is unusable.
    """
    extra = dict(extra_labels or {})
    check_label_keys(extra)
    dockerfile = _read_text(workspace / dockerfile_path(kind))
    problems = check_dockerfile(dockerfile)
    if problems:
        raise BackendImageError(f"{dockerfile_path(kind)}: {'; '.join(problems)}")
    dockerignore_file = workspace / ".dockerignore"
    dockerignore = dockerignore_file.read_text() if dockerignore_file.is_file() else ""
    export = parse_export(tools.export(workspace, backend_package(kind)))
    if not export.members:
        raise BackendImageError(f"uv export of {backend_package(kind)} has no members")
    members = {
        member: source_tree_hash(workspace / member) for member in export.members
    }
    installer, _ = tools.installer()
    sources = controller_sources_hash(workspace) if kind == CONTROLLER else None
    plan = BuildPlan(
        kind=kind,
        python_minor=python_minor_of(base.python_version),
        base_image_id=base.image_id,
        dockerfile=dockerfile,
        dockerignore=dockerignore,
        requirements=tuple(r.line() for r in export.requirements),
        members=members,
        installer=installer,
        extra_labels=extra,
        sources=sources,
    )
    return plan, export


def prepare_wheelhouse(
    plan: BuildPlan,
    export: LockedExport,
    *,
    workspace: Path,
    cache_dir: Path,
    wheelhouse: Path,
    tools: WheelhouseTools,
) -> list[BuiltWheel]:
    """Fill ``wheelhouse`` with everything the Dockerfile installs, offline.

    Third-party wheels come from the pool in ``cache_dir`` (downloaded on a miss), our
    members are built fresh; ``requirements.txt`` pins all of them by hash, next to
    ``python-minor`` and, when the host's uv runs in the image, the ``uv`` binary
    (the controller's also has ``dockerignore``, the workspace's ``.dockerignore``).

    Returns:
        Our wheels, as built into the wheelhouse.

    Raises:
        BackendImageError: A wheel could not be built or downloaded.
    """
    wheelhouse.mkdir(parents=True, exist_ok=True)
    pool = cache_dir / "wheels" / f"cp{plan.python_minor.replace('.', '')}"
    third_party = _fill_pool(export.requirements, plan.python_minor, pool, tools)
    for wheel in third_party.values():
        _link_or_copy(wheel, wheelhouse / wheel.name)
    ours: list[BuiltWheel] = []
    for member in export.members:
        path = tools.build_wheel(workspace, member, wheelhouse)
        name, version = wheel_name_version(path.name)
        ours.append(BuiltWheel(name, version, path, sha256_file(path)))
    (wheelhouse / "requirements.txt").write_text(
        render_requirements(export.requirements, ours)
    )
    (wheelhouse / "python-minor").write_text(plan.python_minor + "\n")
    _, uv_binary = tools.installer()
    if uv_binary is not None:
        shutil.copy2(uv_binary, wheelhouse / "uv")
    if plan.kind == CONTROLLER:
        # The image's /opt/beephost-src/.dockerignore: the one in the build context
        # is not it (docker-py rewrites it), and backend build keys hash it.
        (wheelhouse / "dockerignore").write_text(plan.dockerignore)
    return ours


def prepare_context(
    plan: BuildPlan,
    export: LockedExport,
    *,
    workspace: Path,
    cache_dir: Path,
    context: Path,
    tools: WheelhouseTools,
) -> list[BuiltWheel]:
    """Lay out a build context shaped like the repository root, wheelhouse included.

    Only what the Dockerfile reads is there: ``.dockerignore``, the Dockerfile and
    the wheelhouse, so the engine receives a few tens of MB, not the repository. The
    controller's context also has ``CONTROLLER_SOURCES`` (about 2 MB).

    Returns:
        Our wheels, as built into the wheelhouse.

    Raises:
        BackendImageError: A wheel could not be built or downloaded.
    """
    if plan.kind == CONTROLLER:
        copy_controller_sources(workspace, context)
    target = context / dockerfile_path(plan.kind)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(plan.dockerfile)
    if plan.dockerignore:
        (context / ".dockerignore").write_text(plan.dockerignore)
    return prepare_wheelhouse(
        plan,
        export,
        workspace=workspace,
        cache_dir=cache_dir,
        wheelhouse=context / wheelhouse_path(plan.kind),
        tools=tools,
    )


def _retire(
    runtime: ContainerRuntime,
    previous_id: str | None,
    current_id: str,
    repository: str,
    label_kind: str = KIND_BACKEND_IMAGE,
) -> None:
    # The alias moved: the build it left is ours, and is dropped unless a container
    # still uses it (the engine refuses then) or it has a tag of another repository.
    if previous_id is None or previous_id == current_id:
        return
    previous = runtime.get_image(previous_id)
    if previous is None or previous.labels.get(LABEL_KIND) != label_kind:
        return
    if any(not tag.startswith(f"{repository}:") for tag in previous.tags):
        return
    try:
        for tag in previous.tags:
            runtime.remove_image(tag)
    except ContainerRuntimeError as exc:
        logger.info("kept previous backend image %s: %s", previous_id, exc)


def default_cache_dir() -> Path:
    """``~/.cache/beephost/backend-images``: the wheel pool and transient contexts."""
    return Path.home() / ".cache" / "beephost" / "backend-images"


def ensure_backend_image(
    kind: str,
    base: BaseImage,
    runtime: ContainerRuntime,
    *,
    workspace: Path | None = None,
    cache_dir: Path | None = None,
    repository: str | None = None,
    tools: WheelhouseTools | None = None,
    extra_labels: Mapping[str, str] | None = None,
    refresh: bool = False,
) -> BackendImage:
    """Make sure the image of backend ``kind`` on ``base`` exists locally.

    The tag is content-addressed; when it exists with the expected build key, nothing
    is built (``built=False``). Otherwise the wheelhouse is prepared (wheels reused
    from the pool in ``cache_dir``), the backend's Dockerfile is built without network,
    the build stage's intermediate images are removed, and ``<repository>:<X.Y>`` is
    moved to the new image (the image it left is removed if nothing uses it).

    ``kind="controller"`` builds the controller's image the same way (see
    ``ensure_controller_image``).

    Args:
        kind: ``"pipe"``, ``"http"``, ``"rpc"`` or ``"controller"``.
        base: The pinned-CPython base image (``ensure_base_image``).
        runtime: The container engine.
        workspace: The repository root; found above the current directory if omitted.
        cache_dir: Wheel pool and build contexts; ``default_cache_dir()`` if omitted.
        repository: Image repository; ``beephost/<kind>-backend`` (or
            ``beephost/controller``) if omitted.
        tools: Host tools for the wheelhouse; ``UvTools()`` if omitted.
        extra_labels: More labels for the image (tests use one to clean up).
        refresh: Build even if the tag exists.

    Returns:
        The image, with its tag, id and versions.

    Raises:
        BackendImageError: Unknown kind, missing base, unusable lock or Dockerfile,
            a wheel that cannot be had, or a failed build.
        ContainerRuntimeError: The engine failed otherwise.

    Example:
        >>> ensure_backend_image("rpc", base, runtime).built
        False
    """
    started = time.monotonic()
    backend = image_kind(kind)
    root = (workspace or find_workspace()).resolve()
    cache = cache_dir or default_cache_dir()
    repo = repository or default_repository(backend)
    host_tools = tools or UvTools()
    base_info = runtime.get_image(base.image_id)
    if base_info is None:
        raise BackendImageError(f"base image {base.tag} ({base.image_id}) is gone")

    plan, export = plan_backend_image(
        backend, base, workspace=root, tools=host_tools, extra_labels=extra_labels
    )
    key = plan.key
    tag = image_tag(repo, plan.python_minor, key)
    aliases = alias_tags(backend, repo, plan.python_minor)
    alias = aliases[0]

    def result(info_id: str, size: int, *, built: bool) -> BackendImage:
        return BackendImage(
            kind=backend,
            tag=tag,
            alias=alias,
            image_id=info_id,
            python_version=base.python_version,
            code_version=plan.code_version,
            build_key=key,
            base_image_id=base.image_id,
            built=built,
            size=size,
            seconds=time.monotonic() - started,
            aliases=aliases,
        )

    with _locked(cache):
        existing = runtime.get_image(tag)
        if existing is not None and not refresh and is_current(existing.labels, plan):
            for moving in aliases:
                aliased = runtime.get_image(moving)
                if aliased is None or aliased.id != existing.id:
                    runtime.tag_image(existing.id, moving)
            logger.info("backend image %s is present (%s)", tag, existing.id)
            return result(existing.id, existing.size, built=False)

        previous = runtime.get_image(alias)
        labels = backend_labels(
            plan, python_version=base.python_version, base_ref=base.tag
        )
        args = build_args(
            plan, python_version=base.python_version, base_ref=base.image_id
        )
        context = Path(tempfile.mkdtemp(prefix=f"context-{backend}-", dir=cache))
        try:
            prepare_context(
                plan,
                export,
                workspace=root,
                cache_dir=cache,
                context=context,
                tools=host_tools,
            )
            logger.info("building %s from %s", tag, base.tag)
            try:
                info = runtime.build_image(
                    context,
                    dockerfile=dockerfile_path(backend),
                    tag=tag,
                    buildargs=args,
                    labels=labels,
                )
            except ContainerRuntimeError as exc:
                raise BackendImageError(f"building {tag} failed: {exc}") from exc
        finally:
            shutil.rmtree(context, ignore_errors=True)
            # The build stage's images are cache nobody will hit again (the next build
            # of this key finds the tag): drop them, also after a failed build.
            with contextlib.suppress(ContainerRuntimeError):
                runtime.remove_by_labels(
                    {LABEL_KIND: KIND_BACKEND_BUILD, LABEL_BUILD_KEY: key}
                )
        if not is_current(info.labels, plan):
            raise BackendImageError(f"{tag} was built without its build-key label")
        for moving in aliases:
            runtime.tag_image(info.id, moving)
        _retire(
            runtime,
            previous.id if previous else None,
            info.id,
            repo,
            image_label_kind(backend),
        )
        image = result(info.id, info.size, built=True)
        logger.info("built %s in %.1f s (%.0f MB)", tag, image.seconds, info.size / 1e6)
        return image


def ensure_controller_image(
    base: BaseImage,
    runtime: ContainerRuntime,
    *,
    workspace: Path | None = None,
    cache_dir: Path | None = None,
    repository: str | None = None,
    tools: WheelhouseTools | None = None,
    extra_labels: Mapping[str, str] | None = None,
    refresh: bool = False,
) -> BackendImage:
    """Make sure the controller's image on ``base`` exists locally.

    ``ensure_backend_image("controller", ...)``: ``services/controller/Dockerfile``
    built offline from the ``beephost-controller`` wheelhouse and the workspace sources
    (``CONTROLLER_SOURCES``); tagged ``<repository>:<X.Y>-<key>`` and moved tags
    ``<repository>:<X.Y>`` and ``<repository>:local`` (default repository
    ``beephost/controller``).

    Raises:
        BackendImageError: As ``ensure_backend_image``.
        ContainerRuntimeError: The engine failed otherwise.

    Example:
        >>> ensure_controller_image(base, runtime).aliases
        ('beephost/controller:3.11', 'beephost/controller:local')
    """
    return ensure_backend_image(
        CONTROLLER,
        base,
        runtime,
        workspace=workspace,
        cache_dir=cache_dir,
        repository=repository,
        tools=tools,
        extra_labels=extra_labels,
        refresh=refresh,
    )


# -- command line ---------------------------------------------------------------------


def export_wheelhouse(
    kind: str,
    base: BaseImage,
    *,
    workspace: Path,
    cache_dir: Path | None = None,
    tools: WheelhouseTools | None = None,
) -> Path:
    """Write the wheelhouse into the repository, for ``docker build`` by hand.

    Afterwards ``docker build -f services/<kind>-backend/Dockerfile .`` (or
    ``services/controller/Dockerfile``) works from the repository root (the base image
    must be the one given here).

    Returns:
        The wheelhouse directory (``<workspace>/build/wheelhouse/<kind>-backend``, or
        ``.../controller``).

    Raises:
        BackendImageError: A wheel could not be built or downloaded.
    """
    backend = image_kind(kind)
    host_tools = tools or UvTools()
    cache = cache_dir or default_cache_dir()
    plan, export = plan_backend_image(
        backend, base, workspace=workspace, tools=host_tools
    )
    target = workspace / wheelhouse_path(backend)
    with _locked(cache):
        shutil.rmtree(target, ignore_errors=True)
        prepare_wheelhouse(
            plan,
            export,
            workspace=workspace,
            cache_dir=cache,
            wheelhouse=target,
            tools=host_tools,
        )
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/build-images``: base images, then the backend images on them.

    ``--controller`` adds the controller's image (alone, without ``--backend``).
    Prints one ``key=value`` line per image (a JSON object with ``--json``) on stdout;
    logs go to stderr. Base-image settings come from ``BEEPHOST_CONTROLLER_*``.

    Returns:
        0 on success, 1 if an image could not be made, 2 on bad settings.
    """
    import argparse

    from pydantic import ValidationError

    from beephost_controller.runtime.base_images import (
        BaseImageError,
        ensure_base_image,
    )
    from beephost_controller.runtime.docker_images import DockerRuntime
    from beephost_controller.settings import Settings

    parser = argparse.ArgumentParser(
        prog="build-images",
        description="Build (or find) the base and backend images, offline.",
    )
    parser.add_argument(
        "--python",
        action="append",
        metavar="X.Y",
        help="CPython minor version; repeat for several (default: 3.11).",
    )
    parser.add_argument(
        "--backend",
        action="append",
        choices=BACKEND_KINDS,
        help=(
            "Backend to build; repeat for several (default: all three, or none "
            "with --controller)."
        ),
    )
    parser.add_argument(
        "--controller",
        action="store_true",
        help=(
            "Also build the controller's image (beephost/controller:<X.Y>-<key>, "
            ":<X.Y> and :local); alone unless --backend is given."
        ),
    )
    parser.add_argument(
        "--refresh", action="store_true", help="Rebuild even if the tag exists."
    )
    parser.add_argument(
        "--export-wheelhouse",
        action="store_true",
        help=(
            "Only write build/wheelhouse/<kind>-backend (or .../controller) for a "
            "manual `docker build -f services/<kind>-backend/Dockerfile .`."
        ),
    )
    parser.add_argument("--json", action="store_true", help="One JSON object per line.")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    pythons: list[str] = args.python or ["3.11"]
    kinds: list[ImageKind] = list(
        args.backend or ([] if args.controller else BACKEND_KINDS)
    )
    if args.controller:
        kinds.append(CONTROLLER)
    try:
        settings = Settings()
    except ValidationError as exc:
        logger.error("invalid settings: %s", exc)
        return 2
    try:
        workspace = find_workspace()
        tools = UvTools()
        runtime = DockerRuntime.from_env()
    except (BackendImageError, ContainerRuntimeError) as exc:
        logger.error("%s", exc)
        return 1

    def emit(record: Mapping[str, object]) -> None:
        if args.json:
            line = json.dumps(record)
        else:
            line = " ".join(
                f"{key}={str(value).lower() if isinstance(value, bool) else value}"
                for key, value in record.items()
            )
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        for python in pythons:
            started = time.monotonic()
            base = ensure_base_image(python, settings, runtime=runtime)
            emit(
                {
                    "image": "base",
                    "tag": base.tag,
                    "id": base.image_id,
                    "python": base.python_version,
                    "built": base.built,
                    "size_mb": round(base.size / 1e6, 1),
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
            for kind in kinds:
                if args.export_wheelhouse:
                    started = time.monotonic()
                    path = export_wheelhouse(
                        kind, base, workspace=workspace, tools=tools
                    )
                    emit(
                        {
                            "image": _service(kind),
                            "wheelhouse": str(path.relative_to(workspace)),
                            "base": base.tag,
                            "seconds": round(time.monotonic() - started, 1),
                        }
                    )
                    continue
                image = ensure_backend_image(
                    kind,
                    base,
                    runtime,
                    workspace=workspace,
                    tools=tools,
                    refresh=args.refresh,
                )
                record: dict[str, object] = {
                    "image": _service(kind),
                    "tag": image.tag,
                    "alias": image.alias,
                }
                if len(image.aliases) > 1:
                    record["aliases"] = ",".join(image.aliases)
                record.update(
                    {
                        "id": image.image_id,
                        "python": image.python_version,
                        "code": image.code_version,
                        "built": image.built,
                        "size_mb": round(image.size / 1e6, 1),
                        "seconds": round(image.seconds, 1),
                    }
                )
                emit(record)
    except (BaseImageError, BackendImageError, ContainerRuntimeError) as exc:
        logger.error("%s", exc)
        return 1
    finally:
        runtime.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
