"""Debian root filesystems for base images: mmdebstrap, its hook, and their checks.

There is no container registry on the machines this project builds on, so by default a
base image is a Debian root filesystem made by ``mmdebstrap --variant=extract`` (about
20 s) and turned into a one-layer image with ``docker import``. The rootfs tarball is
kept as the pinned artifact: Debian serves only current package versions, so the
tarball (and its sha256, recorded as a label) is what makes a base image
reproducible. Everything but ``MmdebstrapBuilder`` is pure logic.
"""

import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from beephost_controller.engine.tool_env import tool_environment
from beephost_controller.images.errors import BaseImageError
from beephost_controller.images.keys import content_key

logger = logging.getLogger(__name__)

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
#: nftables: a Kubernetes pod's firewall, installed by an init container that runs
#: the pod's own image (``engine/kube_firewall.py``); without NET_ADMIN it does nothing.
ROOTFS_PACKAGES = (
    "dash",
    "libstdc++6",
    "libgcc-s1",
    "ca-certificates",
    "coreutils",
    "nftables",
)

#: Files a usable rootfs must contain (checked in the tarball before importing it).
REQUIRED_ROOTFS_FILES = (
    "usr/bin/python3",
    "usr/bin/python",
    "etc/ssl/certs/ca-certificates.crt",
    "var/lib/dpkg/status",
    "usr/sbin/nft",
)

_UPSTREAM_RE = re.compile(r"^\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?$")


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
    def packages_key(self) -> str:
        """A short digest of the package list: a cached tarball (and a base image)
        of another list is another artifact."""
        return content_key({"packages": list(self.packages)})[:12]

    @property
    def artifact_name(self) -> str:
        return f"python{self.python_minor}-{self.suite}-{self.packages_key}.tar.gz"


class RootfsBuilder(Protocol):
    """Builds a root filesystem tarball; ``MmdebstrapBuilder`` or a test fake."""

    def build(self, plan: RootfsPlan, output: Path) -> None:
        """Write the rootfs for ``plan`` as a gzip tarball at ``output``."""
        ...


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


def rootfs_plan(minor: str, mirror: str) -> RootfsPlan:
    """The mmdebstrap plan for ``minor`` from ``mirror``.

    Raises:
        BaseImageError: No Debian suite ships ``minor``.
    """
    return RootfsPlan(python_minor=minor, suite=debian_suite(minor), mirror=mirror)


# Runs on the host, with the rootfs being built as "$1", after extraction and before
# mmdebstrap writes the tarball. Customize hooks do not run for --variant=extract.
_EXTRACT_HOOK = r"""#!/bin/sh
# mmdebstrap --extract-hook written by beephost_controller.images.rootfs.
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


def ensure_rootfs(
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
