"""Pinned-CPython base images: built from Debian packages, or pulled from a registry by digest.

There is no container registry on the machines this project builds on, so by default a
base image is a Debian root filesystem made by ``mmdebstrap --variant=extract`` (about
20 s) and turned into a one-layer image with ``docker import``. The rootfs tarball is
kept as the pinned artifact: Debian serves only current package versions, so the
tarball (and its sha256, recorded as a label) is what makes a base image
reproducible. With ``BEEPHOST_CONTROLLER_BASE_IMAGE_REGISTRY`` set, the official
``python:X.Y-slim`` image is pulled instead, always by digest, never by tag.

Either way the image is tagged ``<repository>:<X.Y>`` and carries ``io.beephost.*``
labels; a later call finds it by tag and does nothing. Everything except
``MmdebstrapBuilder`` and the ``ContainerRuntime`` calls is pure logic.

Example:
    >>> image = ensure_base_image("3.11", Settings())
    >>> image.tag, image.python_version
    ('beephost/python:3.11', '3.11.2')
"""

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from beephost_controller.ports import (
    ContainerRuntime,
    ContainerRuntimeError,
    ImageInfo,
)
from beephost_controller.runtime.tool_env import tool_environment
from beephost_controller.settings import Settings

logger = logging.getLogger(__name__)

Source = Literal["debian", "registry"]

#: CPython minor version -> the Debian suite whose python3.X package provides it.
#: No suite ships 3.12. sid moves: its 3.14 patch level changes under you.
DEBIAN_SUITES: Mapping[str, str] = {"3.11": "bookworm", "3.13": "trixie", "3.14": "sid"}

#: Suites whose packages need a merged /usr (python3.13 finds its loader only there).
MERGED_USR_SUITES = frozenset({"trixie", "sid"})
#: Suites whose Release file may be past its Valid-Until date.
UNDATED_SUITES = frozenset({"sid"})
MERGED_USR_HOOK = "/usr/share/mmdebstrap/hooks/merged-usr/setup00.sh"
#: mmdebstrap clamps file times to SOURCE_DATE_EPOCH and sorts the tarball: the same
#: packages then give the same bytes, so equal sha256 labels mean equal rootfs.
ROOTFS_SOURCE_DATE_EPOCH = 1735689600  # 2025-01-01T00:00:00Z

#: Packages next to python3.X-venv. libstdc++6: grpcio and most C++ wheels;
#: coreutils: extract mode has none and Dockerfile RUN steps need rm, mkdir...
ROOTFS_PACKAGES = ("dash", "libstdc++6", "libgcc-s1", "ca-certificates", "coreutils")

#: Files a usable rootfs must contain (checked in the tarball before importing it).
REQUIRED_ROOTFS_FILES = (
    "usr/bin/python3",
    "usr/bin/python",
    "etc/ssl/certs/ca-certificates.crt",
    "var/lib/dpkg/status",
)

#: Multi-arch index digests of docker.io/library/python:X.Y-slim, as pinned in public
#: Dockerfiles in 2026. They could not be checked from the build machines (no registry
#: is reachable there); a mirror of Docker Hub serves the same digests. Override per
#: version with BEEPHOST_CONTROLLER_BASE_IMAGE_DIGESTS, which any other registry needs.
OFFICIAL_SLIM_DIGESTS: Mapping[str, str] = {
    "3.11": "sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7",
    "3.13": "sha256:7c61056e61ac89e852de05f3dc6fa51a6dd2181797bceed46aa725dd7cb2cd3b",
    "3.14": "sha256:ce40764625a4ff50df3548277632e7f96c4e77fe75fa848aae9885476e7df5a4",
}

IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VERSION_PROBE = "import platform; print(platform.python_version())"

LABEL_MANAGED = "io.beephost.managed"
LABEL_KIND = "io.beephost.kind"
LABEL_PYTHON_VERSION = "io.beephost.python.version"
LABEL_PYTHON_MINOR = "io.beephost.python.minor"
LABEL_ROOTFS_SHA256 = "io.beephost.rootfs.sha256"
LABEL_DEBIAN_SUITE = "io.beephost.debian.suite"
LABEL_DEBIAN_VERSION = "io.beephost.debian.python-package-version"
LABEL_SOURCE = "io.beephost.base.source"
LABEL_BASE_REF = "io.beephost.base.ref"
LABEL_BASE_DIGEST = "io.beephost.base.digest"
KIND_BASE_IMAGE = "base-image"
KIND_PROBE = "base-image-probe"

_MINOR_RE = re.compile(r"^3\.(\d{1,2})$")
_UPSTREAM_RE = re.compile(r"^\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?$")
_LABEL_KEY_RE = re.compile(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$")


class BaseImageError(Exception):
    """A base image could not be built, pulled or verified."""


@dataclass(frozen=True)
class BaseImage:
    """A local pinned-CPython base image.

    Attributes:
        tag: ``<repository>:<X.Y>``, the name the controller builds on.
        image_id: The engine's image id (``sha256:...``).
        python_version: Exact CPython version, as ``platform.python_version()`` says.
        source: ``"debian"`` (mmdebstrap rootfs) or ``"registry"`` (pulled by digest).
        built: Whether this call did any work; ``False`` on a cache hit.
        rootfs_sha256: sha256 of the rootfs tarball (Debian source only).
        rootfs_path: The tarball in the cache directory, if it is there.
        debian_suite: Suite the packages came from (Debian source only).
        digest: Manifest digest that was pulled (registry source only).
        size: Image size in bytes, as the engine reports it.
    """

    tag: str
    image_id: str
    python_version: str
    source: Source
    built: bool
    rootfs_sha256: str | None = None
    rootfs_path: Path | None = None
    debian_suite: str | None = None
    digest: str | None = None
    size: int = 0


@dataclass(frozen=True)
class RootfsPlan:
    """What mmdebstrap should build for one CPython minor version."""

    python_minor: str
    suite: str
    mirror: str

    @property
    def packages(self) -> tuple[str, ...]:
        return (f"python{self.python_minor}-venv", *ROOTFS_PACKAGES)

    @property
    def artifact_name(self) -> str:
        return f"python{self.python_minor}-{self.suite}.tar.gz"


@dataclass(frozen=True)
class RegistryReference:
    """An image to pull: ``repository@digest``, described as ``repository:X.Y-slim@digest``."""

    repository: str
    digest: str
    python_minor: str

    @property
    def pull_ref(self) -> str:
        return f"{self.repository}@{self.digest}"

    @property
    def display(self) -> str:
        return f"{self.repository}:{self.python_minor}-slim@{self.digest}"


class RootfsBuilder(Protocol):
    """Builds a root filesystem tarball; ``MmdebstrapBuilder`` or a test fake."""

    def build(self, plan: RootfsPlan, output: Path) -> None:
        """Write the rootfs for ``plan`` as a gzip tarball at ``output``."""
        ...


# -- pure logic -----------------------------------------------------------------------


def python_minor(python: str) -> str:
    """Validate a CPython minor version such as ``"3.11"``.

    Args:
        python: ``X.Y``; patch versions are not accepted (they are an output).

    Returns:
        The same string.

    Raises:
        BaseImageError: It is not a ``3.Y`` version.
    """
    if not _MINOR_RE.match(python):
        raise BaseImageError(
            f"expected a CPython minor version like 3.11, got {python!r}"
        )
    return python


def debian_suite(minor: str) -> str:
    """The Debian suite that ships CPython ``minor``.

    Raises:
        BaseImageError: No Debian suite ships it (3.12, for one).
    """
    try:
        return DEBIAN_SUITES[minor]
    except KeyError:
        known = ", ".join(sorted(DEBIAN_SUITES))
        raise BaseImageError(
            f"no Debian suite ships CPython {minor} (known: {known}); "
            "set BEEPHOST_CONTROLLER_BASE_IMAGE_REGISTRY to pull it instead"
        ) from None


def base_image_tag(repository: str, minor: str) -> str:
    """The local tag of the base image for ``minor``: ``<repository>:<X.Y>``."""
    return f"{repository}:{minor}"


def select_source(settings: Settings) -> Source:
    """Registry if one is configured, else Debian: the one switch between the two paths."""
    return "registry" if settings.base_image_registry else "debian"


def registry_reference(settings: Settings, minor: str) -> RegistryReference:
    """The digest-pinned reference to pull for ``minor`` in registry mode.

    The per-version setting wins over the built-in table; there is no tag fallback.

    Raises:
        BaseImageError: No registry is configured, or no digest is known for ``minor``.
    """
    if not settings.base_image_registry:
        raise BaseImageError(
            "registry mode needs BEEPHOST_CONTROLLER_BASE_IMAGE_REGISTRY"
        )
    digest = settings.base_image_digests.get(minor) or OFFICIAL_SLIM_DIGESTS.get(minor)
    if digest is None:
        raise BaseImageError(
            f"no digest pinned for python:{minor}-slim; set "
            f'BEEPHOST_CONTROLLER_BASE_IMAGE_DIGESTS=\'{{"{minor}": "sha256:..."}}\' '
            "(a floating tag is never pulled)"
        )
    return RegistryReference(
        repository=f"{settings.base_image_registry}/python",
        digest=digest,
        python_minor=minor,
    )


def rootfs_plan(minor: str, mirror: str) -> RootfsPlan:
    """The mmdebstrap plan for ``minor`` from ``mirror``.

    Raises:
        BaseImageError: No Debian suite ships ``minor``.
    """
    return RootfsPlan(python_minor=minor, suite=debian_suite(minor), mirror=mirror)


# Runs on the host, with the rootfs being built as "$1", after extraction and before
# mmdebstrap writes the tarball. Customize hooks do not run for --variant=extract.
_EXTRACT_HOOK = r"""#!/bin/sh
# mmdebstrap --extract-hook written by beephost_controller.runtime.base_images.
# Extract mode unpacks packages without running their maintainer scripts; this redoes
# the parts of them a Python base image needs. "$1" is the root filesystem.
set -eu
root="$1"

# dpkg status: extract mode leaves it empty. Record every package as "unpacked"
# (exactly what happened: unpacked, never configured) so that dpkg-query and image
# scanners can read the versions, and the exact CPython version can be read back.
status="$root/var/lib/dpkg/status"
: > "$status.new"
for deb in "$root"/var/cache/apt/archives/*.deb; do
    dpkg-deb --field "$deb" | sed '/^Package: /a Status: install ok unpacked' >> "$status.new"
    echo >> "$status.new"
done
mv "$status.new" "$status"

# CA bundle: update-ca-certificates (ca-certificates' postinst) would write it. The ssl
# module trusts it by default, and ensurepip in "python3 -m venv" fails without it.
mkdir -p "$root/etc/ssl/certs"
for crt in "$root"/usr/share/ca-certificates/mozilla/*.crt; do
    sed -e '$a\' "$crt"
done > "$root/etc/ssl/certs/ca-certificates.crt"

# python3 and python on PATH (python3-minimal ships the first; the second is ours).
[ -e "$root/usr/bin/python3" ] || [ -L "$root/usr/bin/python3" ] || ln -s @PYTHON@ "$root/usr/bin/python3"
[ -e "$root/usr/bin/python" ] || [ -L "$root/usr/bin/python" ] || ln -s python3 "$root/usr/bin/python"

# A root account (base-passwd's postinst would write one): getpwuid(0) and ~ need it.
[ -e "$root/etc/passwd" ] || printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
[ -e "$root/etc/group" ] || printf 'root:x:0:\n' > "$root/etc/group"
mkdir -p -m 0700 "$root/root"

# mmdebstrap copies the build host's resolv.conf and hostname in. Docker mounts its own
# at run time; the host's must not leak into the artifact (nor change its sha256).
rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
"""


def extract_hook_script(minor: str) -> str:
    """The ``--extract-hook`` shell script that finishes an extract-mode rootfs."""
    return _EXTRACT_HOOK.replace("@PYTHON@", f"python{minor}")


def mmdebstrap_command(
    plan: RootfsPlan, output: Path, hook: Path, *, executable: str = "mmdebstrap"
) -> list[str]:
    """The mmdebstrap argv that builds ``plan`` into ``output`` (a ``.tar.gz``)."""
    command = [
        executable,
        "--variant=extract",
        f"--include={','.join(plan.packages)}",
    ]
    if plan.suite in MERGED_USR_SUITES:
        command.append(f"--setup-hook={MERGED_USR_HOOK}")
    if plan.suite in UNDATED_SUITES:
        command.append('--aptopt=Acquire::Check-Valid-Until "false"')
    command += [f"--extract-hook={hook}", plan.suite, str(output), plan.mirror]
    return command


def parse_dpkg_status(text: str) -> dict[str, dict[str, str]]:
    """Parse a dpkg status (or any deb822) file into ``{package: {field: value}}``.

    Continuation lines are joined with newlines. Field names keep dpkg's spelling.
    """
    packages: dict[str, dict[str, str]] = {}
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        last: str | None = None
        for line in stanza.splitlines():
            if not line.strip():
                continue
            if line[0] in " \t":
                if last is not None:
                    fields[last] += "\n" + line.strip()
                continue
            key, sep, value = line.partition(":")
            if not sep:
                continue
            last = key.strip()
            fields[last] = value.strip()
        if "Package" in fields:
            packages.setdefault(fields["Package"], fields)
    return packages


def upstream_version(debian_version: str) -> str:
    """CPython's own version from a Debian package version.

    ``3.11.2-6+deb12u6`` → ``3.11.2``; ``3.14.0~rc3-1`` → ``3.14.0rc3``.

    Raises:
        BaseImageError: What remains is not a CPython version.
    """
    version = debian_version.partition(":")[2] or debian_version  # drop an epoch
    version = version.rsplit("-", 1)[0]  # drop the Debian revision
    version = version.split("+", 1)[0].replace("~", "")
    if not _UPSTREAM_RE.match(version):
        raise BaseImageError(f"not a CPython package version: {debian_version!r}")
    return version


def python_version_from_status(status_text: str, minor: str) -> tuple[str, str]:
    """The exact CPython version recorded in a rootfs's ``var/lib/dpkg/status``.

    Args:
        status_text: The status file's content.
        minor: ``X.Y``; the interpreter package is ``pythonX.Y-minimal``.

    Returns:
        ``(upstream version, Debian package version)``, e.g. ``("3.11.2", "3.11.2-6")``.

    Raises:
        BaseImageError: The package is missing, not unpacked, or of another minor.
    """
    package = f"python{minor}-minimal"
    fields = parse_dpkg_status(status_text).get(package)
    if fields is None or "Version" not in fields:
        raise BaseImageError(f"{package} is not in the rootfs's dpkg status")
    if not fields.get("Status", "").startswith("install ok"):
        raise BaseImageError(f"{package} is not unpacked: {fields.get('Status')!r}")
    version = upstream_version(fields["Version"])
    if not version.startswith(f"{minor}."):
        raise BaseImageError(f"{package} has version {version}, not {minor}.x")
    return version, fields["Version"]


def check_label_keys(labels: Mapping[str, str]) -> None:
    """Reject extra labels that a ``LABEL`` change or a label filter would mangle.

    Raises:
        BaseImageError: A key is not lowercase and dotted, or a value has a line break.
    """
    for key, value in labels.items():
        if not _LABEL_KEY_RE.match(key):
            raise BaseImageError(f"invalid label key {key!r}")
        if "\n" in value or "\r" in value:
            raise BaseImageError(f"label {key} has a line break")


def debian_labels(
    *,
    minor: str,
    python_version: str,
    package_version: str,
    suite: str,
    rootfs_sha256: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The labels of a base image built from Debian packages."""
    return {
        **(extra or {}),
        LABEL_MANAGED: "true",
        LABEL_KIND: KIND_BASE_IMAGE,
        LABEL_SOURCE: "debian",
        LABEL_PYTHON_MINOR: minor,
        LABEL_PYTHON_VERSION: python_version,
        LABEL_DEBIAN_VERSION: package_version,
        LABEL_DEBIAN_SUITE: suite,
        LABEL_ROOTFS_SHA256: rootfs_sha256,
    }


def registry_labels(
    *,
    reference: RegistryReference,
    python_version: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The labels of a base image pulled by digest."""
    return {
        **(extra or {}),
        LABEL_MANAGED: "true",
        LABEL_KIND: KIND_BASE_IMAGE,
        LABEL_SOURCE: "registry",
        LABEL_PYTHON_MINOR: reference.python_minor,
        LABEL_PYTHON_VERSION: python_version,
        LABEL_BASE_REF: reference.display,
        LABEL_BASE_DIGEST: reference.digest,
    }


def import_changes(labels: Mapping[str, str]) -> list[str]:
    """``docker import --change`` instructions: labels, PATH, locale and ``CMD``."""
    changes = [
        f"LABEL {key}={json.dumps(value)}" for key, value in sorted(labels.items())
    ]
    changes += [
        f"ENV PATH={IMAGE_PATH}",
        "ENV LANG=C.UTF-8",
        'CMD ["python3"]',
    ]
    return changes


def is_current(
    info: ImageInfo,
    *,
    source: Source,
    suite: str | None = None,
    digest: str | None = None,
) -> bool:
    """Whether an existing image is the one these settings would produce.

    An image of the other source, suite or digest (the settings changed) is stale.
    """
    labels = info.labels
    if (
        labels.get(LABEL_MANAGED) != "true"
        or labels.get(LABEL_KIND) != KIND_BASE_IMAGE
        or labels.get(LABEL_SOURCE) != source
        or not labels.get(LABEL_PYTHON_VERSION)
    ):
        return False
    if source == "debian":
        return labels.get(LABEL_DEBIAN_SUITE) == suite
    return labels.get(LABEL_BASE_DIGEST) == digest


def base_image_from_labels(
    tag: str, info: ImageInfo, *, built: bool, rootfs_path: Path | None = None
) -> BaseImage:
    """Describe an image from its labels (the cache-hit path)."""
    labels = info.labels
    source: Source = "registry" if labels.get(LABEL_SOURCE) == "registry" else "debian"
    return BaseImage(
        tag=tag,
        image_id=info.id,
        python_version=labels[LABEL_PYTHON_VERSION],
        source=source,
        built=built,
        rootfs_sha256=labels.get(LABEL_ROOTFS_SHA256),
        rootfs_path=rootfs_path if rootfs_path and rootfs_path.is_file() else None,
        debian_suite=labels.get(LABEL_DEBIAN_SUITE),
        digest=labels.get(LABEL_BASE_DIGEST),
        size=info.size,
    )


# -- files ---------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_rootfs(tarball: Path) -> tuple[str, set[str]]:
    """Read a rootfs tarball's dpkg status and the set of its member paths.

    Paths are relative, without a leading ``./``.

    Raises:
        BaseImageError: The tarball is unreadable or has no dpkg status.
    """
    status: str | None = None
    members: set[str] = set()
    try:
        with tarfile.open(tarball, "r:*") as archive:
            for member in archive:
                name = member.name.removeprefix("./")
                members.add(name)
                if name == "var/lib/dpkg/status" and member.isfile():
                    stream = archive.extractfile(member)
                    if stream is not None:
                        status = stream.read().decode()
    except (OSError, tarfile.TarError) as exc:
        raise BaseImageError(f"cannot read rootfs {tarball}: {exc}") from exc
    if status is None:
        raise BaseImageError(f"{tarball} has no var/lib/dpkg/status")
    return status, members


@contextlib.contextmanager
def _locked(directory: Path, name: str) -> Iterator[None]:
    # Two controllers (or a test and the script) building the same version would race
    # on the tarball and the tag; an flock in the cache directory serialises them.
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f".{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class MmdebstrapBuilder:
    """``RootfsBuilder`` that runs mmdebstrap (needs root, or unprivileged user namespaces).

    Args:
        executable: mmdebstrap's path or name on ``PATH``.
        timeout: Seconds before the build is abandoned.
        source_date_epoch: File-time clamp that makes the tarball reproducible.
    """

    def __init__(
        self,
        executable: str = "mmdebstrap",
        timeout: float = 900.0,
        source_date_epoch: int = ROOTFS_SOURCE_DATE_EPOCH,
    ) -> None:
        self.executable = executable
        self.timeout = timeout
        self.source_date_epoch = source_date_epoch

    def build(self, plan: RootfsPlan, output: Path) -> None:
        """Build the rootfs for ``plan`` into ``output`` (a ``.tar.gz``).

        Raises:
            BaseImageError: mmdebstrap is missing, fails or times out.
        """
        executable = shutil.which(self.executable)
        if executable is None:
            raise BaseImageError(
                f"{self.executable} not found: install it (apt-get install mmdebstrap)"
            )
        # The hook path must be free of shell metacharacters: mmdebstrap then execs it
        # directly with the rootfs directory as $1. mkdtemp names are [a-z0-9_].
        with tempfile.TemporaryDirectory(prefix="beephost_rootfs_") as workdir:
            hook = Path(workdir) / "extract-hook"
            hook.write_text(extract_hook_script(plan.python_minor))
            hook.chmod(0o755)
            command = mmdebstrap_command(plan, output, hook, executable=executable)
            logger.info("building rootfs: %s", " ".join(command))
            try:
                result = subprocess.run(
                    command,
                    # Never the controller's environment: no token, no BEEPHOST_*.
                    env=tool_environment(
                        {"SOURCE_DATE_EPOCH": str(self.source_date_epoch)}
                    ),
                    capture_output=True,
                    text=True,
                    timeout=self.timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise BaseImageError(
                    f"mmdebstrap {plan.suite} timed out after {self.timeout} s"
                ) from exc
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-15:])
            raise BaseImageError(
                f"mmdebstrap {plan.suite} failed ({result.returncode}):\n{tail}"
            )


# -- orchestration --------------------------------------------------------------------


def _probe_version(
    runtime: ContainerRuntime, image: str, extra_labels: Mapping[str, str]
) -> str:
    labels = {**extra_labels, LABEL_MANAGED: "true", LABEL_KIND: KIND_PROBE}
    try:
        output = runtime.run(image, ["python3", "-c", VERSION_PROBE], labels=labels)
    except ContainerRuntimeError as exc:
        raise BaseImageError(f"python3 does not run in {image}: {exc}") from exc
    return output.strip()


def _retire(runtime: ContainerRuntime, old: ImageInfo | None, new_id: str) -> None:
    # A rebuild moves the tag; the image it leaves behind is ours (managed label) and
    # now unnamed. Remove it unless something still uses it.
    if old is None or old.id == new_id or old.labels.get(LABEL_MANAGED) != "true":
        return
    current = runtime.get_image(old.id)
    if current is None or current.tags:
        return
    try:
        runtime.remove_image(old.id)
    except ContainerRuntimeError as exc:
        logger.info("kept previous base image %s: %s", old.id, exc)


def _ensure_rootfs(
    plan: RootfsPlan, cache_dir: Path, builder: RootfsBuilder, *, refresh: bool
) -> Path:
    artifact = cache_dir / plan.artifact_name
    if artifact.is_file() and not refresh:
        logger.info("reusing rootfs %s", artifact)
        return artifact
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Same .tar.gz suffix: mmdebstrap picks the compression from the file name.
    partial = cache_dir / f".partial-{os.getpid()}-{plan.artifact_name}"
    started = time.monotonic()
    try:
        builder.build(plan, partial)
        os.replace(partial, artifact)
    finally:
        partial.unlink(missing_ok=True)
    logger.info(
        "built rootfs %s in %.1f s (%.1f MiB)",
        artifact,
        time.monotonic() - started,
        artifact.stat().st_size / 2**20,
    )
    return artifact


def _ensure_from_debian(
    minor: str,
    tag: str,
    settings: Settings,
    runtime: ContainerRuntime,
    builder: RootfsBuilder,
    extra_labels: Mapping[str, str],
    *,
    refresh: bool,
) -> BaseImage:
    plan = rootfs_plan(minor, settings.debian_mirror)
    artifact = _ensure_rootfs(plan, settings.rootfs_cache_dir, builder, refresh=refresh)
    status, members = read_rootfs(artifact)
    missing = [path for path in REQUIRED_ROOTFS_FILES if path not in members]
    if missing:
        raise BaseImageError(f"{artifact} lacks {', '.join(missing)}")
    python_version, package_version = python_version_from_status(status, minor)
    rootfs_sha256 = sha256_file(artifact)
    labels = debian_labels(
        minor=minor,
        python_version=python_version,
        package_version=package_version,
        suite=plan.suite,
        rootfs_sha256=rootfs_sha256,
        extra=extra_labels,
    )
    info = runtime.import_image(artifact, tag, changes=import_changes(labels))
    try:
        running = _probe_version(runtime, info.id, extra_labels)
        if running != python_version:
            raise BaseImageError(
                f"{tag}: dpkg says CPython {python_version}, "
                f"the interpreter says {running!r}"
            )
    except BaseImageError:
        # Do not leave a broken image under the tag for the next call to trust.
        with contextlib.suppress(ContainerRuntimeError):
            runtime.remove_image(info.id, force=True)
        raise
    return base_image_from_labels(tag, info, built=True, rootfs_path=artifact)


def _ensure_from_registry(
    minor: str,
    tag: str,
    settings: Settings,
    runtime: ContainerRuntime,
    extra_labels: Mapping[str, str],
) -> BaseImage:
    reference = registry_reference(settings, minor)
    had_reference = runtime.get_image(reference.pull_ref) is not None
    logger.info("pulling %s", reference.display)
    try:
        pulled = runtime.pull_image(reference.repository, reference.digest)
    except ContainerRuntimeError as exc:
        raise BaseImageError(f"cannot pull {reference.display}: {exc}") from exc
    try:
        running = _probe_version(runtime, pulled.id, extra_labels)
        if not running.startswith(f"{minor}."):
            raise BaseImageError(
                f"{reference.display} runs CPython {running!r}, not {minor}.x"
            )
        # A pulled image cannot get labels without a build: FROM it, add labels, done.
        labels = registry_labels(
            reference=reference, python_version=running, extra=extra_labels
        )
        info = runtime.build_labelled_image(pulled.id, tag, labels)
    finally:
        if not had_reference:
            # Our own pull reference; the layers stay as the parent of our image.
            with contextlib.suppress(ContainerRuntimeError):
                runtime.remove_image(reference.pull_ref)
    return base_image_from_labels(tag, info, built=True)


def ensure_base_image(
    python: str,
    settings: Settings,
    *,
    runtime: ContainerRuntime | None = None,
    builder: RootfsBuilder | None = None,
    extra_labels: Mapping[str, str] | None = None,
    refresh: bool = False,
) -> BaseImage:
    """Make sure the pinned-CPython base image for ``python`` exists locally.

    A current image under ``<repository>:<X.Y>`` is returned as is (``built=False``).
    Otherwise, with no registry configured, the rootfs tarball is taken from the cache
    directory or built with mmdebstrap, checked, imported and verified by running its
    ``python3``; with a registry, ``python:X.Y-slim`` is pulled by digest, verified and
    relabelled.

    Args:
        python: CPython minor version, ``"3.11"``.
        settings: Repository, registry, digests, cache directory and mirror.
        runtime: The container engine; a ``DockerRuntime`` from the environment if
            omitted.
        builder: Rootfs builder; ``MmdebstrapBuilder()`` if omitted.
        extra_labels: More labels for the image and probe containers (tests use one
            to find and remove what they created).
        refresh: Rebuild (or re-pull) even if a current image or tarball exists.

    Returns:
        The image, with the exact CPython version it runs.

    Raises:
        BaseImageError: Unsupported version, missing digest, failed build, pull or
            verification.
        ContainerRuntimeError: The engine failed otherwise.

    Example:
        >>> ensure_base_image("3.13", settings).python_version
        '3.13.5'
    """
    minor = python_minor(python)
    extra = dict(extra_labels or {})
    check_label_keys(extra)
    source = select_source(settings)
    tag = base_image_tag(settings.base_image_repository, minor)
    suite = debian_suite(minor) if source == "debian" else None
    digest = (
        registry_reference(settings, minor).digest if source == "registry" else None
    )
    rootfs_path = (
        settings.rootfs_cache_dir
        / rootfs_plan(minor, settings.debian_mirror).artifact_name
        if source == "debian"
        else None
    )

    owns_runtime = runtime is None
    if runtime is None:
        # Imported here: unit tests and the fake never load docker-py.
        from beephost_controller.runtime.docker_images import DockerRuntime

        runtime = DockerRuntime.from_env()
    try:
        lock_name = f"{settings.base_image_repository.replace('/', '_')}-{minor}"
        with _locked(settings.rootfs_cache_dir, lock_name):
            existing = runtime.get_image(tag)
            if (
                existing is not None
                and not refresh
                and is_current(existing, source=source, suite=suite, digest=digest)
            ):
                logger.info("base image %s is present (%s)", tag, existing.id)
                return base_image_from_labels(
                    tag, existing, built=False, rootfs_path=rootfs_path
                )
            if existing is not None and not refresh:
                logger.info(
                    "base image %s is stale for these settings; rebuilding", tag
                )
            started = time.monotonic()
            if source == "debian":
                image = _ensure_from_debian(
                    minor,
                    tag,
                    settings,
                    runtime,
                    builder or MmdebstrapBuilder(),
                    extra,
                    refresh=refresh,
                )
            else:
                image = _ensure_from_registry(minor, tag, settings, runtime, extra)
            _retire(runtime, existing, image.image_id)
            logger.info(
                "base image %s (CPython %s, %s) ready in %.1f s",
                tag,
                image.python_version,
                image.source,
                time.monotonic() - started,
            )
            return image
    finally:
        if owns_runtime:
            close = getattr(runtime, "close", None)
            if callable(close):
                close()


# -- command line ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``beephost-base-image --python 3.11 [--python 3.13 ...]``: build or find base images.

    Prints one ``key=value`` line per image (or a JSON object with ``--json``) on stdout;
    logs go to stderr. Settings come from ``BEEPHOST_CONTROLLER_*``.

    Returns:
        0 on success, 1 if an image could not be made, 2 on bad settings.
    """
    parser = argparse.ArgumentParser(
        prog="beephost-base-image",
        description="Build (or find) pinned-CPython base images for the controller.",
    )
    parser.add_argument(
        "--python",
        action="append",
        required=True,
        metavar="X.Y",
        help="CPython minor version; repeat for several (3.11, 3.13, 3.14).",
    )
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="Rebuild the rootfs (or re-pull) even if an image or tarball exists.",
    )
    parser.add_argument("--json", action="store_true", help="One JSON object per line.")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    from pydantic import ValidationError

    from beephost_controller.runtime.docker_images import DockerRuntime

    try:
        settings = Settings()
    except ValidationError as exc:
        logger.error("invalid settings: %s", exc)
        return 2
    try:
        runtime = DockerRuntime.from_env()
    except ContainerRuntimeError as exc:
        logger.error("%s", exc)
        return 1
    try:
        for python in args.python:
            started = time.monotonic()
            image = ensure_base_image(
                python, settings, runtime=runtime, refresh=args.refresh
            )
            record = {
                "tag": image.tag,
                "id": image.image_id,
                "version": image.python_version,
                "sha256": image.rootfs_sha256 or image.digest or "",
                "source": image.source,
                "built": image.built,
                "size_mb": round(image.size / 1e6, 1),
                "seconds": round(time.monotonic() - started, 1),
            }
            if args.json:
                line = json.dumps(record)
            else:
                line = " ".join(
                    f"{key}={str(value).lower() if isinstance(value, bool) else value}"
                    for key, value in record.items()
                )
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except (BaseImageError, ContainerRuntimeError) as exc:
        logger.error("%s", exc)
        return 1
    finally:
        runtime.close()
    return 0
