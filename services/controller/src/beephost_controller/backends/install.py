"""Packages added to a running backend (``install``), as a job with a log.

The backend has no network and a read-only root; the controller has the network, the
index settings and CA bundle, and the wheel pool. So the controller resolves the
packages with uv against the environment's lock and what the backend has installed
already (nothing changes version: a conflict fails with uv's own message), downloads
their wheels into the pool, unpacks them for the environment's CPython, and copies
the result into the backend's ``/packages`` volume, staged; the backend then moves it
into ``/packages/site``, on every session's ``sys.path``, whole or not at all
(``beephost_core.packages``). The environment and its image are unchanged.
"""

import contextlib
import io
import json
import re
import secrets
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from beephost_controller.images.layout import (
    PACKAGES,
    PACKAGES_SITE,
    SERVER_UID,
    SERVER_USER,
    default_cache_dir,
    server_command,
)
from beephost_controller.images.lockfile import LockedRequirement, lock_requirements
from beephost_controller.images.uv_tools import UvTools
from beephost_controller.images.wheelhouse import WheelhouseTools, pool_wheels
from beephost_controller.jobs import JobRunner
from beephost_controller.ports import BackendEngine, ContainerEngineError
from beephost_controller.requirements import check_requirements
from beephost_controller.resolver import Lock, ResolutionError
from beephost_controller.rows import BackendRow, JobRow
from beephost_controller.schemas import BackendType
from beephost_controller.store import SqliteStore
from beephost_protocol.errors import Conflict, InvalidRequest, Unavailable

#: Seconds the backend may take to list or move its packages.
EXEC_TIMEOUT = 60.0
#: The most packages one install may name.
MAX_PACKAGES = 100

Resolve = Callable[[list[str], str], Lock]


class InstallFailed(Exception):
    """The install stopped; the backend is as it was. ``str()`` says why."""


class PackageTools(WheelhouseTools, Protocol):
    """What an install needs of uv (``UvTools``): the wheel pool's downloads, and
    unpacking wheels into a directory."""

    def unpack(
        self, lines: Sequence[str], python_minor: str, wheels: Path, target: Path
    ) -> None: ...


@dataclass(frozen=True)
class InstalledPackage:
    name: str
    version: str


# -- the pure steps ------------------------------------------------------------------


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pin(requirement: LockedRequirement) -> str:
    """A locked requirement as a resolver input: exactly that version (or wheel)."""
    head = (
        f"{requirement.name} @ {requirement.url}"
        if requirement.url
        else f"{requirement.name}=={requirement.version}"
    )
    return f"{head} ; {requirement.marker}" if requirement.marker else head


def resolution_input(
    locked: Sequence[LockedRequirement],
    installed: Sequence[InstalledPackage],
    packages: Sequence[str],
) -> list[str]:
    """What uv resolves: the environment's lock and the installed packages, pinned,
    and the new packages."""
    return [
        *(pin(r) for r in locked),
        *(f"{p.name}=={p.version}" for p in installed),
        *packages,
    ]


def to_install(
    resolved: Sequence[LockedRequirement],
    locked: Sequence[LockedRequirement],
    installed: Sequence[InstalledPackage],
) -> list[LockedRequirement]:
    """What the resolution adds: neither in the environment nor installed already."""
    have = {canonical(r.name) for r in locked}
    have |= {canonical(p.name) for p in installed}
    return [r for r in resolved if canonical(r.name) not in have]


#: What the installer (``uv pip install --target``) leaves at the top of its target
#: for itself, not for the backend: its lock file. Copied in, every later install
#: would bring another one, and activation refuses a file already installed.
BOOKKEEPING = frozenset({".lock"})


def staged_archive(tree: Path, staged: str) -> bytes:
    """``tree`` as a tar archive under ``staged/``, owned by the backend's user.

    Scripts (``bin/``) are left out: their shebangs name this host's paths. So are
    the installer's own files (``BOOKKEEPING``).
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:

        def owned(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            parts = Path(info.name).parts
            if len(parts) > 1 and (parts[1] == "bin" or parts[1] in BOOKKEEPING):
                return None
            info.uid = info.gid = SERVER_UID
            info.uname = info.gname = ""
            info.mode = 0o755 if info.isdir() else 0o644
            return info

        archive.add(tree, arcname=staged, filter=owned)
    return buffer.getvalue()


def _packages_command(kind: BackendType, *args: str) -> list[str]:
    # Every server venv has beephost_core; the environment's interpreter may not.
    return [server_command(kind)[0], "-m", "beephost_core.packages", *args]


# -- the job -------------------------------------------------------------------------


class PackageInstaller:
    """Installs packages into running backends, one install per backend at a time.

    Args:
        engine: Where the backends run (the copy in, the commands run in them).
        store: The backends' and environments' rows.
        refresh: A backend's row with its status read again (the lifecycle's).
        jobs: Where installs run, as jobs of kind ``install``.
        resolve: uv's resolution (the controller's index and CA bundle).
        url_schemes: The URL schemes a requirement may name (REQUIREMENT_URL_SCHEMES).
        tools: uv's downloads and unpacking (``UvTools``).
        cache_dir: Holds the wheel pool (``wheels/cpXY``), shared with image builds.
    """

    def __init__(
        self,
        engine: BackendEngine,
        store: SqliteStore,
        refresh: Callable[[str], BackendRow],
        jobs: JobRunner,
        resolve: Resolve,
        *,
        url_schemes: Sequence[str] = (),
        tools: PackageTools | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.refresh = refresh
        self.url_schemes = tuple(url_schemes)
        self.jobs = jobs
        self.resolve = resolve
        self._tools = tools
        self.cache_dir = cache_dir or default_cache_dir()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @property
    def tools(self) -> PackageTools:
        if self._tools is None:
            self._tools = UvTools()
        return self._tools

    def submit(self, backend_id: str, packages: Sequence[str]) -> JobRow:
        """Check the request now (a bad one is refused, not a failed job), then queue
        the install.

        Raises:
            InvalidRequest: No packages, too many, or one that is no plain requirement.
            NotFound: No such backend.
            Conflict: The backend is not ready.
        """
        if not packages:
            raise InvalidRequest("name at least one package to install")
        if len(packages) > MAX_PACKAGES:
            raise InvalidRequest(f"at most {MAX_PACKAGES} packages per install")
        check_requirements(packages, self.url_schemes)
        self._ready_row(backend_id)
        wanted = [" ".join(p.split()) for p in packages]
        # One backend's installs queue: each resolves against what the one before
        # installed. Installs into other backends run meanwhile.
        return self.jobs.submit(
            "install",
            backend_id,
            lambda log: self.install(backend_id, wanted, log),
            queue=f"install {backend_id}",
        )

    def installed(self, backend_id: str) -> list[InstalledPackage]:
        """What was installed into the backend at run time (not its environment's).

        Raises:
            NotFound: No such backend.
            Conflict: The backend is not ready.
            Unavailable: The backend did not answer as it should.
        """
        row = self._ready_row(backend_id)
        try:
            return self._run_packages(row, "list", PACKAGES_SITE)
        except InstallFailed as exc:
            raise Unavailable(str(exc)) from None

    def install(
        self, backend_id: str, packages: Sequence[str], log: Callable[[str], None]
    ) -> None:
        """The install job: resolve, download, unpack, copy in, activate."""
        with self._lock_of(backend_id):
            row = self._ready_row(backend_id)
            environment = self.store.environment(row.environment)
            if environment is None or environment.lock is None:
                raise InstallFailed(f"environment {row.environment!r} has no lock")
            locked = lock_requirements(environment.lock)
            installed = self._run_packages(row, "list", PACKAGES_SITE)
            log(
                f"resolving {', '.join(packages)} for CPython {environment.python} with "
                f"the environment's {len(locked)} locked and {len(installed)} "
                "installed package(s)"
            )
            try:
                lock = self.resolve(
                    resolution_input(locked, installed, packages), environment.python
                )
            except ResolutionError as exc:
                raise InstallFailed(f"resolution failed: {exc}") from None
            new = to_install(lock_requirements(lock.text), locked, installed)
            if not new:
                log("already satisfied: nothing to install")
                return
            log(f"installing {', '.join(f'{r.name}=={r.version}' for r in new)}")
            self._copy_in(row, new, environment.python, log)

    def _copy_in(
        self,
        row: BackendRow,
        new: Sequence[LockedRequirement],
        python: str,
        log: Callable[[str], None],
    ) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="install-", dir=self.cache_dir))
        staged = f".staging-{secrets.token_hex(6)}"
        try:
            wheels, tree = scratch / "wheels", scratch / "tree"
            pool_wheels(
                new, python, cache_dir=self.cache_dir, target=wheels, tools=self.tools
            )
            log(f"wheels ready: {len(list(wheels.glob('*.whl')))} for CPython {python}")
            self.tools.unpack([r.line() for r in new], python, wheels, tree)
            archive = staged_archive(tree, staged)
            log(f"copying {len(archive) >> 10} KiB into backend {row.id}")
            try:
                self.engine.copy_in(row, PACKAGES, archive)
            except ContainerEngineError as exc:
                self._discard(row, staged)
                raise InstallFailed(f"could not copy into the backend: {exc}") from None
            now = self._run_packages(row, "activate", PACKAGES, staged)
            names = ", ".join(f"{p.name}=={p.version}" for p in now)
            log(f"installed; the backend has now: {names}")
            log("every session imports them at its next import")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _discard(self, row: BackendRow, staged: str) -> None:
        # What a failed discard leaves is staged only: on no sys.path.
        with contextlib.suppress(ContainerEngineError):
            self.engine.exec_in(
                row,
                _packages_command(row.type, "discard", PACKAGES, staged),
                SERVER_USER,
                EXEC_TIMEOUT,
            )

    def _run_packages(self, row: BackendRow, *args: str) -> list[InstalledPackage]:
        try:
            status, output = self.engine.exec_in(
                row, _packages_command(row.type, *args), SERVER_USER, EXEC_TIMEOUT
            )
        except ContainerEngineError as exc:
            raise Unavailable(f"backend {row.id} did not answer: {exc}") from None
        try:
            reply = json.loads(output.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise InstallFailed(
                f"backend {row.id} answered {output[-300:]!r} (exit {status})"
            ) from None
        if status != 0 or "error" in reply:
            raise InstallFailed(f"backend {row.id} refused: {reply.get('error')}")
        return [InstalledPackage(p["name"], p["version"]) for p in reply["installed"]]

    def _ready_row(self, backend_id: str) -> BackendRow:
        row = self.refresh(backend_id)
        if row.pooled:  # nothing may change a member before its claim
            raise Conflict(
                f"backend {backend_id} is an unclaimed pool member",
                {"backend": backend_id},
            )
        if row.status != "ready":
            raise Conflict(
                f"backend {backend_id} is {row.status}, not ready",
                {"backend": backend_id, "status": row.status},
            )
        return row

    def _lock_of(self, backend_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(backend_id, threading.Lock())
