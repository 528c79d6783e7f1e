"""The wheelhouse: the uv driver (``UvTools``) and the pool of downloaded wheels.

An image build never reaches a package index: the host fills a wheelhouse first
(third-party wheels pinned and hash-locked by the lock, downloaded for the image's
CPython into a pool shared by every build; our workspace packages built with
``uv build``), and the image installs from it offline.
"""

import json
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
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
from beephost_controller.runtime.tool_env import tool_environment

logger = logging.getLogger(__name__)

#: pip only downloads here (uv has no download command); pinned, run through uv.
PIP_VERSION = "25.3"

#: Every manylinux tag up to glibc 2.36 (bookworm; trixie has 2.41): all three legacy
#: spellings are needed, or grpcio and new numpy wheels are missed.
MANYLINUX_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)),
    "manylinux2014_x86_64",
)

#: Settings.model_config's env_prefix: UvTools reads CA_BUNDLE and INDEX_URL under it.
_SETTINGS_PREFIX = "BEEPHOST_CONTROLLER_"


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


# -- uv ------------------------------------------------------------------------------


def _locked_uv() -> str | None:
    try:
        from uv import find_uv_bin
    except ImportError:
        return None
    try:
        return str(find_uv_bin())
    except FileNotFoundError:
        return None


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

    def unpack(
        self, lines: Sequence[str], python_minor: str, wheels: Path, target: Path
    ) -> None:
        """Install hash-locked requirements from the wheels in ``wheels`` (offline, no
        dependencies) into the directory ``target``, laid out for CPython
        ``python_minor`` on manylinux x86-64: what a backend adds to its sys.path.

        Raises:
            BackendImageError: A wheel is missing or does not match its hash.
        """
        with tempfile.NamedTemporaryFile(
            "w", suffix=".txt", dir=wheels, prefix=".req-", delete=False
        ) as handle:
            handle.write("\n".join(lines) + "\n")
        try:
            self._run(
                [
                    self.uv,
                    "pip",
                    "install",
                    "--quiet",
                    "--no-config",
                    "--target",
                    str(target),
                    "--no-deps",
                    "--no-index",
                    "--find-links",
                    str(wheels),
                    "--require-hashes",
                    "--python-version",
                    python_minor,
                    "--python-platform",
                    "x86_64-manylinux_2_28",
                    "-r",
                    handle.name,
                ]
            )
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


# -- the pool ------------------------------------------------------------------------


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
