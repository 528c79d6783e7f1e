"""Installs into running backends, one after another and at once, with real wheels,
the real uv unpacking them and the real ``beephost_core.packages`` moving them into
each backend's files (the in-memory engine keeps those in a directory). Only the
resolver is a table: it needs no index. The Docker-backed path is
tests/e2e/test_packages.py."""

import base64
import hashlib
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from beephost_controller.backends import BackendRequest, BackendService
from beephost_controller.backends.install import (
    InstalledPackage,
    PackageInstaller,
    canonical,
)
from beephost_controller.images.lockfile import LockedRequirement
from beephost_controller.images.uv_tools import UvTools
from beephost_controller.jobs import JobRunner
from beephost_controller.resolver import Lock, ResolutionError
from beephost_controller.rows import BackendRow
from beephost_controller.testing import MemoryContainers
from tests.unit.controller.support import (
    backend_service,
    memory_containers,
    package_installer,
    ready_environment,
)

SIX = LockedRequirement("six", "1.17.0", None, ("sha256:" + "a" * 64,))
NAMES = ("alpha", "beta", "gamma")
_LONG = 60.0  # a wait only a bug outlasts


def _wheel(pool: Path, name: str, version: str) -> LockedRequirement:
    """A real pure-Python wheel of ``name`` in the pool, and its locked pin."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }  # fmt: skip
    record = []
    path = pool / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, data in files.items():
            wheel.writestr(member, data)
            encoded = base64.urlsafe_b64encode(hashlib.sha256(data).digest())
            record.append(f"{member},sha256={encoded.decode().rstrip('=')},{len(data)}")
        wheel.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return LockedRequirement(name, version, None, (f"sha256:{digest}",))


class TableResolver:
    """Resolves from a table of locked pins; ``before[name]`` runs before a
    resolution naming ``name`` returns (to hold it, or to meet another)."""

    def __init__(self, known: Sequence[LockedRequirement]) -> None:
        self.known = {canonical(r.name): r for r in known}
        self.before: dict[str, Callable[[], object]] = {}

    def __call__(self, requirements: list[str], python: str) -> Lock:
        names = [canonical(Requirement(line).name) for line in requirements]
        for name in names:
            self.before.get(name, lambda: None)()
        unknown = [n for n in names if n not in self.known]
        if unknown:
            raise ResolutionError(f"no such package: {', '.join(unknown)}")
        return Lock("\n".join(self.known[n].line() for n in dict.fromkeys(names)))


def _run_in_container(root: Path, command: Sequence[str]) -> tuple[int, str]:
    # The backend's `python -m beephost_core.packages ...`, on the container's files.
    assert list(command[1:3]) == ["-m", "beephost_core.packages"]
    args = [str(root / a.lstrip("/")) if a.startswith("/") else a for a in command[3:]]
    done = subprocess.run(
        [sys.executable, "-m", "beephost_core.packages", *args],
        capture_output=True,
        text=True,
        timeout=_LONG,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def resolver(tmp_path: Path) -> TableResolver:
    pool = tmp_path / "cache" / "wheels" / "cp311"
    pool.mkdir(parents=True)
    return TableResolver([SIX, *(_wheel(pool, n, "1.0") for n in NAMES)])


@dataclass
class Rig:
    """Backends on in-memory containers with files, two job workers, and their
    installer (real uv, the table resolver)."""

    backends: BackendService
    runner: JobRunner
    installer: PackageInstaller
    resolver: TableResolver

    def started(self) -> BackendRow:
        return self.backends.start(BackendRequest(environment="e", type="pipe"))

    def install(self, backend: BackendRow, package: str) -> str:
        return self.installer.submit(backend.id, [package]).id

    def succeeded(self, *job_ids: str) -> None:
        assert self.runner.wait_idle(_LONG)
        for job_id in job_ids:
            row = self.backends.store.job(job_id)
            assert row is not None
            assert (row.status, row.error) == ("succeeded", None)

    def installed(self, backend: BackendRow) -> list[str]:
        return [p.name for p in self.installer.installed(backend.id)]


@pytest.fixture
def rig(tmp_path: Path, resolver: TableResolver) -> Iterator[Rig]:
    containers = MemoryContainers()
    containers.files = tmp_path / "containers"
    containers.exec_files = _run_in_container
    environment = ready_environment(requirements=["six"], lock=SIX.line() + "\n")
    backends = backend_service(
        tmp_path, containers=containers, environments=[environment]
    )
    runner = JobRunner(backends.store, 2)
    installer = package_installer(
        backends, runner, resolver, tools=UvTools(), cache_dir=tmp_path / "cache"
    )
    yield Rig(backends, runner, installer, resolver)
    assert runner.wait_idle(_LONG), "an install never finished"
    runner.shutdown()


def test_a_second_install_adds_to_the_first(rig: Rig) -> None:
    row = rig.started()
    rig.succeeded(rig.install(row, "alpha"))
    rig.succeeded(rig.install(row, "beta"))
    assert rig.installer.installed(row.id) == [
        InstalledPackage("alpha", "1.0"),
        InstalledPackage("beta", "1.0"),
    ]
    containers = memory_containers(rig.backends)
    site = containers.root(row.container_name) / "packages" / "site"
    assert (site / "beta" / "__init__.py").read_text() == "VERSION = '1.0'\n"
    # uv's own lock file of its target directory stays out of the backend.
    assert not (site / ".lock").exists()

    again = rig.install(row, "alpha")
    rig.succeeded(again)
    lines = [line for _, line in rig.backends.store.log_lines(again, -1)]
    assert lines[-1] == "already satisfied: nothing to install"
    assert rig.installed(row) == ["alpha", "beta"]


def test_concurrent_installs_into_one_backend_all_succeed(rig: Rig) -> None:
    row = rig.started()
    jobs: list[str] = []
    submitters = [
        threading.Thread(target=lambda name=name: jobs.append(rig.install(row, name)))
        for name in NAMES
    ]
    for thread in submitters:
        thread.start()
    for thread in submitters:
        thread.join(_LONG)
    assert len(jobs) == len(NAMES)
    rig.succeeded(*jobs)
    assert rig.installed(row) == list(NAMES)


def test_installs_into_two_backends_run_at_once(rig: Rig) -> None:
    one, other = rig.started(), rig.started()
    # Each resolution waits for the other's: only two at once pass (2 workers).
    meet = threading.Barrier(2, timeout=_LONG)
    rig.resolver.before = {"alpha": meet.wait, "gamma": meet.wait}
    rig.succeeded(rig.install(one, "alpha"), rig.install(other, "gamma"))
    assert rig.installed(one) == ["alpha"]
    assert rig.installed(other) == ["gamma"]


def test_an_install_waiting_for_its_backend_holds_no_worker(rig: Rig) -> None:
    one, other = rig.started(), rig.started()
    # alpha's resolution ends only once gamma's, for the other backend, began; beta
    # waits behind alpha. Had beta taken the second worker to wait, gamma could not
    # run and alpha would never end.
    gamma_began = threading.Event()

    def after_gamma() -> None:
        if not gamma_began.wait(10):
            raise AssertionError("gamma's install never ran")

    rig.resolver.before = {"alpha": after_gamma, "gamma": gamma_began.set}
    rig.succeeded(
        rig.install(one, "alpha"), rig.install(one, "beta"), rig.install(other, "gamma")
    )
    assert rig.installed(one) == ["alpha", "beta"]
