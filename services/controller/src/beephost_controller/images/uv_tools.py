"""``UvTools``: the wheelhouse's tools on uv (export, build, download, unpack).

The controller's and the release scripts' ``WheelhouseTools`` (wheelhouse.py): each is
one uv command line, run with the tools' environment (never the controller's: no
token) and the operator's CA bundle and package index.
"""

import logging
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from beephost_controller.engine.tool_env import tool_environment
from beephost_controller.engine.tool_exit import killed_words
from beephost_controller.images.errors import BackendImageError

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
        killed = killed_words(
            Path(command[0]).name,
            result.returncode,
            "download or install fewer packages at once or raise the controller's "
            "memory",
        )
        if killed is not None:
            raise BackendImageError(f"{shlex.join(command)}: {killed}")
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-20:])
            raise BackendImageError(
                f"{shlex.join(command)} failed ({result.returncode}):\n{tail}"
            )
        return result.stdout

    def export(self, workspace: Path, package: str, *also: str) -> str:
        """``uv export --locked`` of the runtime closure of ``package`` and ``also``
        (no dev groups).

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
                *(arg for name in (package, *also) for arg in ("--package", name)),
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

    def wheel_from_source(self, line: str, outdir: Path) -> Path:
        """Download the hash-locked source distribution of one requirement (``pip
        download --no-binary :all: --require-hashes``) and build it into a wheel in
        ``outdir`` with ``uv build`` (its build backend from the index, isolated).

        For a lock entry that has no wheel at all (pyperclip, in the egress proxy's):
        the sdist's hash is checked; the wheel's is whatever the build gives, and
        the caller pins those exact bytes.

        Raises:
            BackendImageError: No sdist with a locked hash, or the build failed or
                gave no single wheel.
        """
        outdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=outdir, prefix=".sdist-") as scratch:
            work = Path(scratch)
            requirements = work / "requirement.txt"
            requirements.write_text(line + "\n")
            command = [
                self.uv, "tool", "run", "--from", f"pip=={PIP_VERSION}", "pip",
                "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                "--require-hashes", "--no-binary=:all:",
            ]  # fmt: skip
            if self.ca_bundle is not None:
                command += ["--cert", self.ca_bundle]
            if self.index_url is not None:
                command += ["--index-url", self.index_url]
            command += ["--dest", str(work / "sdist"), "-r", str(requirements)]
            self._run(command, env=self.environment(index=True))
            sdists = sorted((work / "sdist").iterdir())
            if len(sdists) != 1:
                raise BackendImageError(f"{line}: expected one source distribution")
            self._run(
                [
                    *(self.uv, "build", "--wheel", "--quiet", "--no-config"),
                    *("-o", str(work / "wheel"), str(sdists[0])),
                ],
                env=self.environment(index=True),
            )
            wheels = sorted((work / "wheel").glob("*.whl"))
            if len(wheels) != 1:
                raise BackendImageError(
                    f"uv build {sdists[0].name}: expected one wheel"
                )
            target = outdir / wheels[0].name
            os.replace(wheels[0], target)
        return target

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
