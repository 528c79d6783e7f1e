"""Installing packages into a running backend: the pure steps, the checks before a
job is queued, and the job's paths that need no uv (already satisfied, a conflict).
The whole install runs for real in tests/e2e/test_packages.py."""

import io
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from beephost_controller.backends import BackendRequest, BackendService
from beephost_controller.backends.install import (
    InstalledPackage,
    InstallFailed,
    PackageInstaller,
    canonical,
    pin,
    resolution_input,
    staged_archive,
    to_install,
)
from beephost_controller.images.lockfile import LockedRequirement
from beephost_controller.jobs import JobRunner
from beephost_controller.resolver import Lock, ResolutionError
from beephost_controller.testing import MemoryContainers
from beephost_protocol.errors import Conflict, InvalidRequest, NotFound
from tests.unit.controller.support import (
    backend_service,
    memory_containers,
    package_installer,
    ready_environment,
)

SIX = LockedRequirement("six", "1.17.0", None, ("sha256:" + "a" * 64,))
LOCK = "six==1.17.0 \\\n    --hash=sha256:" + "a" * 64 + "\n"


def test_names_compare_as_pep_503_says() -> None:
    assert canonical("Foo_Bar.baz") == canonical("foo-bar-BAZ") == "foo-bar-baz"


def test_pins_keep_markers_and_direct_references() -> None:
    assert pin(SIX) == "six==1.17.0"
    marked = LockedRequirement("tomli", "2.0.1", 'python_version < "3.11"', ())
    assert pin(marked) == 'tomli==2.0.1 ; python_version < "3.11"'
    direct = LockedRequirement("w", "1", None, (), url="https://x/w-1-py3-none-any.whl")
    assert pin(direct) == "w @ https://x/w-1-py3-none-any.whl"


def test_what_is_resolved_and_what_is_installed() -> None:
    installed = [InstalledPackage("Tabulate", "0.9.0")]
    assert resolution_input([SIX], installed, ["rich>=13"]) == [
        "six==1.17.0",
        "Tabulate==0.9.0",
        "rich>=13",
    ]
    resolved = [
        SIX,
        LockedRequirement("tabulate", "0.9.0", None, ()),
        LockedRequirement("rich", "13.9.4", None, ()),
        LockedRequirement("markdown-it-py", "3.0.0", None, ()),
    ]
    assert [r.name for r in to_install(resolved, [SIX], installed)] == [
        "rich",
        "markdown-it-py",
    ]


def test_the_staged_archive_is_owned_by_the_backend_user(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("x = 1\n")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool").write_text("#!/host/python\n")
    (tmp_path / ".lock").write_text("")  # uv's, for its target directory
    (tmp_path / "pkg" / ".lock").write_text("")  # a package's own: it stays
    data = staged_archive(tmp_path, ".staging-1")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert set(members) == {
        ".staging-1",
        ".staging-1/pkg",
        ".staging-1/pkg/__init__.py",
        ".staging-1/pkg/.lock",
    }
    assert {(m.uid, m.gid) for m in members.values()} == {(10001, 10001)}
    assert members[".staging-1/pkg/__init__.py"].mode == 0o644


@pytest.fixture
def backends(tmp_path: Path) -> BackendService:
    containers = MemoryContainers()
    containers.exec_answer = lambda command: (0, json.dumps({"installed": []}))
    environment = ready_environment(requirements=["six"], lock=LOCK)
    return backend_service(tmp_path, containers=containers, environments=[environment])


def installer(backends: BackendService, resolve: object = None) -> PackageInstaller:
    def locked(requirements: list[str], python: str) -> Lock:
        return Lock(LOCK)

    runner = JobRunner(backends.store, 1)
    return package_installer(backends, runner, resolve or locked)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("packages", "message"),
    [
        ([], "at least one"),
        (["tabulate", "${BEEPHOST_CONTROLLER_TOKEN}"], "never expanded"),
        (["--index-url=https://evil"], "options are not allowed"),
        (["x @ file:///etc/passwd"], "direct references"),
        (["a"] * 101, "at most 100"),
    ],
)
def test_a_bad_request_is_refused_before_any_job(
    backends: BackendService, packages: list[str], message: str
) -> None:
    row = backends.start(BackendRequest(environment="e", type="http"))
    with pytest.raises(InvalidRequest, match=message):
        installer(backends).submit(row.id, packages)
    assert backends.store.jobs() == []


def test_an_unknown_or_stopped_backend_is_refused(backends: BackendService) -> None:
    with pytest.raises(NotFound):
        installer(backends).submit("b-000000000000", ["tabulate"])
    row = backends.start(BackendRequest(environment="e", type="pipe"))
    memory_containers(backends).exit(row.container_name, 1)
    with pytest.raises(Conflict, match="not ready"):
        installer(backends).submit(row.id, ["tabulate"])


def test_what_the_environment_has_is_already_satisfied(
    backends: BackendService,
) -> None:
    row = backends.start(BackendRequest(environment="e", type="rpc"))
    seen: list[Sequence[str]] = []

    def resolve(requirements: list[str], python: str) -> Lock:
        seen.append(requirements)
        return Lock(LOCK)

    log: list[str] = []
    installer(backends, resolve).install(row.id, ["six"], log.append)
    assert seen == [["six==1.17.0", "six"]]
    assert log[-1] == "already satisfied: nothing to install"
    ((_, command, user),) = memory_containers(backends).execs
    assert command[1:] == ("-m", "beephost_core.packages", "list", "/packages/site")
    assert user == "10001:10001"
    assert memory_containers(backends).archives == []


def test_a_conflict_fails_with_the_resolvers_words(backends: BackendService) -> None:
    row = backends.start(BackendRequest(environment="e", type="http"))

    def conflict(requirements: list[str], python: str) -> Lock:
        raise ResolutionError("six==1.16.0 and six==1.17.0 are incompatible")

    with pytest.raises(InstallFailed, match=r"resolution failed: six==1\.16\.0"):
        installer(backends, conflict).install(row.id, ["six==1.16.0"], print)
    assert memory_containers(backends).archives == []
