"""Servers and environment images, and the client SDK (the admin environment), on fakes.

The servers image's Dockerfile, the install container and the wheelhouse on
FakeEngine and FakeWheelhouseTools; the admin environment's resolution and content
address on ControllerService with an in-memory builder. The real builds are
tests/e2e/test_controller_images.py and tests/e2e/test_admin_image.py.
"""

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from beephost_controller.images import labels as names
from beephost_controller.images import servers
from beephost_controller.images.builder import DockerImageBuilder
from beephost_controller.images.dockerfile import dockerfile_instructions
from beephost_controller.images.environment import EnvironmentImage, sdk_code_version
from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.install import commit_changes, install_script
from beephost_controller.images.keys import (
    ENVIRONMENT_LAYOUT,
    environment_code,
    environment_tag,
    source_tree_hash,
)
from beephost_controller.images.layout import (
    ENV_PREFIX,
    ENV_PYTHON,
    SDK_MEMBERS,
    SDK_REQUIREMENTS_FILE,
    SERVER_VENVS,
    WHEELHOUSE,
    servers_repository,
)
from beephost_controller.images.servers import (
    render_servers_dockerfile,
    servers_build_key,
)
from beephost_controller.jobs import JobLog, JobRunner
from beephost_controller.ports import (
    BaseImageRef,
    ContainerEngineError,
    ContainerRunError,
    ImageNotFoundError,
)
from beephost_controller.resolver import Lock
from beephost_controller.schemas import BACKEND_TYPES
from beephost_controller.service import ControllerService, sdk_requirements
from beephost_controller.settings import Settings
from beephost_controller.specs import CommitRunSpec
from beephost_controller.store import SqliteStore
from beephost_controller.testing import (
    CommitRun,
    FakeEngine,
    FakeWheelhouseTools,
    MemoryImageBuilder,
    fake_wheel_bytes,
)
from tests.unit.controller.conftest import RUN_LABELS, ImageRig
from tests.unit.controller.support import pending_environment

SIX_HASH = hashlib.sha256(fake_wheel_bytes("six", "1.17.0", "3.11")).hexdigest()
LOCK = f"six==1.17.0 \\\n    --hash=sha256:{SIX_HASH}\n"
ATTRS_HASH = hashlib.sha256(fake_wheel_bytes("attrs", "25.4.0", "3.11")).hexdigest()
OTHER_LOCK = f"attrs==25.4.0 \\\n    --hash=sha256:{ATTRS_HASH}\n"


# -- fixtures -------------------------------------------------------------------------


def ensure(
    rig: ImageRig,
    *,
    tag: str,
    lock: str = LOCK,
    lines: list[str] | None = None,
    **kwargs: Any,
) -> EnvironmentImage:
    log = (lines if lines is not None else []).append
    return rig.environment(tag=tag, lock=lock, log=log, **kwargs)


def build(
    rig: ImageRig, *, tag: str, lock: str = LOCK, sdk: bool
) -> tuple[str, CommitRun]:
    image = ensure(rig, tag=tag, lock=lock, sdk=sdk)
    assert image.built
    assert image.sdk == (sdk_code_version(rig.workspace) if sdk else None)
    return image.image_id, rig.engine.commit_runs[-1]


def servers_builds(engine: FakeEngine) -> list[str]:
    return [
        tag
        for op, tag in engine.operations
        if op == "build-image" and tag.startswith("beephost-test/servers:")
    ]


def parent_of(engine: FakeEngine, image_id: str) -> str | None:
    return engine._images[image_id].parent


# -- the servers image ----------------------------------------------------------------


class _Backend:
    def __init__(self, image_id: str) -> None:
        self.image_id = image_id


def test_servers_dockerfile_has_the_three_servers_and_an_empty_env() -> None:
    backends = {kind: _Backend(f"sha256:{kind}") for kind in BACKEND_TYPES}
    text = render_servers_dockerfile(backends)  # type: ignore[arg-type]
    steps = [(i.name, i.args) for i in dockerfile_instructions(text)]
    assert steps[:3] == [
        ("FROM", "sha256:http AS http"),
        ("FROM", "sha256:rpc AS rpc"),
        ("FROM", "sha256:pipe"),
    ]
    assert ("COPY", f"--from=http /opt/beephost {SERVER_VENVS['http']}") in steps
    assert ("COPY", f"--from=rpc /opt/beephost {SERVER_VENVS['rpc']}") in steps
    assert ("RUN", f"python3 -m venv --without-pip {ENV_PREFIX}") in steps
    env = next(args for name, args in steps if name == "ENV")
    for kind in BACKEND_TYPES:
        assert f'BEEPHOST_{kind.upper()}_BACKEND_PYTHON="{ENV_PYTHON}"' in env
    # The controller gives every container its command and health check.
    assert steps[-4:] == [
        ("HEALTHCHECK", "NONE"),
        ("ENTRYPOINT", "[]"),
        ("CMD", "[]"),
        ("USER", "10001:10001"),
    ]
    assert "/wheels" not in text  # nothing of any environment


def test_the_servers_image_is_built_once_and_labelled(rig: ImageRig) -> None:
    lines: list[str] = []
    first = ensure(
        rig,
        tag="beephost-test/env:a",
        lines=lines,
    )
    [servers_tag] = servers_builds(rig.engine)
    assert servers_tag.startswith(f"{servers_repository('beephost-test')}:3.11-")
    assert f"servers image {servers_tag} (built" in "\n".join(lines)
    servers = rig.engine.get_image(servers_tag)
    assert servers is not None
    assert servers.labels[names.LABEL_KIND] == names.KIND_SERVERS_IMAGE
    assert servers.labels[names.LABEL_MANAGED] == "true"
    assert servers.labels[names.LABEL_CODE_VERSION] == first.code_version
    assert servers.labels[names.LABEL_PYTHON_VERSION] == "3.11.2"
    assert servers_tag.endswith(servers.labels[names.LABEL_BUILD_KEY][:16])
    assert servers.labels["io.beephost.test.run"] == "unit"

    # Another environment (other requirements) is one more layer on the same image.
    lines.clear()
    second = ensure(
        rig,
        tag="beephost-test/env:b",
        lock=OTHER_LOCK,
        lines=lines,
    )
    assert servers_builds(rig.engine) == [servers_tag]
    assert f"servers image {servers_tag} (cached)" in lines
    assert parent_of(rig.engine, first.image_id) == servers.id
    assert parent_of(rig.engine, second.image_id) == servers.id
    assert [run.spec.image for run in rig.engine.commit_runs] == [
        servers.id,
        servers.id,
    ]


def test_servers_image_in_the_default_repository(rig: ImageRig) -> None:
    ensure(rig, tag="env:a", prefix=None)
    built = [tag for op, tag in rig.engine.operations if op == "build-image"]
    assert any(tag.startswith("beephost/servers:3.11-") for tag in built)
    assert any(tag.startswith("beephost/pipe-backend:3.11-") for tag in built)


def test_a_servers_tag_with_another_key_is_rebuilt(rig: ImageRig) -> None:
    ensure(rig, tag="beephost-test/env:a")
    [servers_tag] = servers_builds(rig.engine)
    # Something else under that tag (not ours, or half made): not reused.
    rig.engine.tag_image(rig.base.image_id, servers_tag)
    ensure(rig, tag="beephost-test/env:b")
    assert servers_builds(rig.engine) == [servers_tag, servers_tag]
    rebuilt = rig.engine.get_image(servers_tag)
    assert rebuilt is not None
    assert rebuilt.labels[names.LABEL_KIND] == names.KIND_SERVERS_IMAGE


# -- the environment image: one install container, committed -------------------------


def test_environment_image_is_one_committed_install_on_the_servers_image(
    rig: ImageRig, tmp_path: Path
) -> None:
    image_id, run = build(rig, tag="beephost-test/env:p", sdk=False)
    [servers_tag] = servers_builds(rig.engine)
    servers = rig.engine.get_image(servers_tag)
    assert servers is not None
    assert run.spec.image == servers.id
    assert run.spec.tag == "beephost-test/env:p"
    assert run.spec.user == "0:0"
    assert list(run.spec.command) == [
        "/bin/sh",
        "-c",
        install_script(install=True, sdk=False),
    ]
    # The container is findable by label: kind, this build's key, the run's labels.
    assert run.spec.labels[names.LABEL_KIND] == names.KIND_ENVIRONMENT_BUILD
    assert run.spec.labels["io.beephost.test.run"] == "unit"
    assert "USER 10001:10001" in run.spec.changes

    labels = rig.engine.get_image(image_id).labels  # type: ignore[union-attr]
    assert labels[names.LABEL_KIND] == names.KIND_ENVIRONMENT_IMAGE
    assert labels[names.LABEL_MANAGED] == "true"
    assert labels[names.LABEL_ENVIRONMENT_LOCK] == Lock(LOCK).digest
    assert labels[names.LABEL_CODE_VERSION] == servers.labels[names.LABEL_CODE_VERSION]
    assert labels[names.LABEL_PYTHON_VERSION] == "3.11.2"
    assert labels[names.LABEL_BUILD_KEY] == run.spec.labels[names.LABEL_BUILD_KEY]
    assert labels[names.LABEL_BUILD_KEY] != servers.labels[names.LABEL_BUILD_KEY]
    assert labels[names.LABEL_SERVERS_IMAGE] == servers.id
    assert labels["io.beephost.test.run"] == "unit"
    assert names.LABEL_ENVIRONMENT_SDK not in labels
    # The wheelhouse went in at /wheels: the lock's wheel and its requirements.
    assert run.files[f"{WHEELHOUSE}/requirements.txt"].startswith(b"six==1.17.0")
    assert any(
        path.startswith(f"{WHEELHOUSE}/six-1.17.0-") and path.endswith(".whl")
        for path in run.files
    )
    # Afterwards nothing of the install is left: the wheelhouse, the container.
    assert not list((tmp_path / "cache").glob("wheels-env-*"))
    assert (
        "remove-by-labels",
        json.dumps(
            {
                "io.beephost.test.run": "unit",
                names.LABEL_KIND: names.KIND_ENVIRONMENT_BUILD,
                names.LABEL_BUILD_KEY: labels[names.LABEL_BUILD_KEY],
            }
        ),
    ) in rig.engine.operations


def test_changes_are_label_and_user_instructions_a_commit_accepts(
    rig: ImageRig,
) -> None:
    value = 'x "y" \\ $HOME ${PATH} é'
    changes = commit_changes({"io.beephost.a": value, names.LABEL_KIND: "k"})
    assert changes == [
        "USER 10001:10001",
        'LABEL io.beephost.a="x \\"y\\" \\\\ \\$HOME \\${PATH} é"',
        'LABEL io.beephost.kind="k"',
    ]
    # Read back as the engine reads them (checked against Docker 20.10): unchanged.
    info = rig.engine.commit_run(
        CommitRunSpec(rig.base.image_id, ["true"], tag="t:1", user="0", changes=changes)
    )
    assert info.labels["io.beephost.a"] == value


def test_install_script_removes_the_wheelhouse_and_keeps_files_readable() -> None:
    script = install_script(install=True, sdk=False)
    lines = script.splitlines()
    assert lines[:2] == ["set -eu", "umask 022"]
    assert lines[-1] == f"rm -rf {WHEELHOUSE}"
    assert "--offline --no-index" in script
    assert script.count("--require-hashes") == 2  # uv, and pip without a Linux uv
    assert "--no-build" in script
    assert "--compile-bytecode" in script


def test_without_requirements_the_environment_is_a_labelled_servers_image(
    rig: ImageRig,
) -> None:
    image = ensure(rig, tag="beephost-test/env:e", lock="")
    assert image.built
    assert rig.engine.commit_runs == []  # nothing to install: no container
    assert ("build", "beephost-test/env:e") in rig.engine.operations
    [servers_tag] = servers_builds(rig.engine)
    servers = rig.engine.get_image(servers_tag)
    assert servers is not None
    assert parent_of(rig.engine, image.image_id) == servers.id
    labels = rig.engine.get_image(image.image_id).labels  # type: ignore[union-attr]
    assert labels[names.LABEL_KIND] == names.KIND_ENVIRONMENT_IMAGE
    assert labels[names.LABEL_ENVIRONMENT_LOCK] == Lock("").digest
    assert labels["io.beephost.test.run"] == "unit"


def test_an_existing_tag_is_used_as_it_is(rig: ImageRig) -> None:
    first = ensure(rig, tag="beephost-test/env:x")
    before = list(rig.engine.operations)
    again = ensure(rig, tag="beephost-test/env:x")
    assert not again.built
    assert again.image_id == first.image_id
    assert rig.engine.operations == before


def test_a_failed_install_leaves_no_image_and_says_why(
    rig: ImageRig, tmp_path: Path
) -> None:
    rig.engine.run_failures["requirements.txt"] = (1, "ERROR: hash mismatch for six\n")
    with pytest.raises(BackendImageError, match="hash mismatch for six"):
        ensure(rig, tag="beephost-test/env:f")
    assert rig.engine.get_image("beephost-test/env:f") is None
    assert rig.engine.operations[-1][0] == "remove-by-labels"
    assert names.KIND_ENVIRONMENT_BUILD in rig.engine.operations[-1][1]
    assert not list((tmp_path / "cache").glob("wheels-env-*"))


def test_the_install_gets_the_host_uv_when_it_runs_in_the_image(
    rig: ImageRig, tmp_path: Path
) -> None:
    uv = tmp_path / "uv"
    uv.write_bytes(b"\x7fELF fake uv")
    rig.tools = FakeWheelhouseTools(uv_binary=uv)
    _, run = build(rig, tag="beephost-test/env:u", sdk=False)
    assert run.files[f"{WHEELHOUSE}/uv"] == b"\x7fELF fake uv"


def test_every_input_changes_the_servers_key(monkeypatch: pytest.MonkeyPatch) -> None:
    backends = {kind: _Backend(f"sha256:{kind}") for kind in BACKEND_TYPES}
    text = render_servers_dockerfile(backends)  # type: ignore[arg-type]

    def key(**overrides: object) -> str:
        kwargs: dict[str, object] = {
            "base_image_id": "sha256:base",
            "backends": backends,
            "dockerfile": text,
            "extra_labels": {},
            **overrides,
        }
        return servers_build_key(**kwargs)  # type: ignore[arg-type]

    first = key()
    assert key() == first
    other = {**backends, "rpc": _Backend("sha256:rpc2")}
    assert key(backends=other) != first
    assert key(base_image_id="sha256:base2") != first
    assert key(dockerfile=text + "\n") != first
    assert key(extra_labels={"io.beephost.test.run": "x"}) != first
    # Images of the Dockerfile-per-environment layout (1) are never taken for these.
    assert ENVIRONMENT_LAYOUT == "2"
    monkeypatch.setattr(servers, "ENVIRONMENT_LAYOUT", "3")
    assert key() != first


def test_fake_commit_run_merges_labels_and_checks_its_inputs(
    rig: ImageRig, tmp_path: Path
) -> None:
    rig.engine.build_labelled_image(rig.base.image_id, "img:1", {"a.b": "image"})
    files = tmp_path / "files"
    (files / "sub").mkdir(parents=True)
    (files / "sub" / "f").write_bytes(b"x")
    info = rig.engine.commit_run(
        CommitRunSpec(
            "img:1",
            ["true"],
            tag="img:2",
            user="0:0",
            files={files: "/in"},
            labels={"a.c": "run", "a.d": "run"},
            changes=["USER 1:1", 'LABEL a.d="change"'],
        )
    )
    assert dict(info.labels) == {
        "io.beephost.python.version": "3.11.2",
        "a.b": "image",
        "a.c": "run",
        "a.d": "change",
    }
    assert rig.engine.commit_runs[-1].files == {"/in/sub/f": b"x"}
    with pytest.raises(ContainerEngineError, match="no directory"):
        rig.engine.commit_run(
            CommitRunSpec(
                "img:1", ["true"], tag="t", user="0", files={files / "no": "/x"}
            )
        )
    with pytest.raises(ContainerEngineError, match="unsupported change"):
        rig.engine.commit_run(
            CommitRunSpec("img:1", ["true"], tag="t", user="0", changes=["RUN x"])
        )
    with pytest.raises(ImageNotFoundError):
        rig.engine.commit_run(CommitRunSpec("img:404", ["true"], tag="t", user="0"))
    rig.engine.run_failures["false"] = (3, "boom")
    with pytest.raises(ContainerRunError, match="boom") as failed:
        rig.engine.commit_run(CommitRunSpec("img:1", ["false"], tag="img:3", user="0"))
    assert failed.value.exit_code == 3
    assert rig.engine.get_image("img:3") is None


# -- the SDK ----------------------------------------------------------------------------


def test_plain_images_do_not_install_the_sdk() -> None:
    text = install_script(install=True, sdk=False)
    assert f"-r {WHEELHOUSE}/requirements.txt" in text
    assert SDK_REQUIREMENTS_FILE not in text
    assert "--no-deps" not in text


def test_the_sdk_is_installed_after_the_lock_without_dependencies() -> None:
    text = install_script(install=True, sdk=True)
    lock_at = text.index(f"-r {WHEELHOUSE}/requirements.txt")
    sdk_at = text.index(f"-r {WHEELHOUSE}/{SDK_REQUIREMENTS_FILE}")
    assert lock_at < sdk_at < text.index(f"rm -rf {WHEELHOUSE}")
    # Both installers (uv, and pip when the host's uv does not run in the image).
    assert text.count(f"--no-deps -r {WHEELHOUSE}/{SDK_REQUIREMENTS_FILE}") == 2
    assert text.count("--require-hashes") == 4
    # An empty lock still gets the SDK (its dependencies would be missing: the caller
    # resolves them into the lock, see ControllerService).
    alone = install_script(install=False, sdk=True)
    assert f"-r {WHEELHOUSE}/requirements.txt" not in alone
    assert f"--no-deps -r {WHEELHOUSE}/{SDK_REQUIREMENTS_FILE}" in alone


def test_admin_wheelhouse_pins_the_sdk_wheels_by_hash(rig: ImageRig) -> None:
    image_id, run = build(rig, tag="beephost-test/env:a", sdk=True)
    assert rig.tools.built[-2:] == list(SDK_MEMBERS)  # after the backend images
    protocol = run.files[f"{WHEELHOUSE}/beephost_protocol-0.1.0-py3-none-any.whl"]
    client = run.files[f"{WHEELHOUSE}/beephost_client-0.1.0-py3-none-any.whl"]
    sdk_txt = run.files[f"{WHEELHOUSE}/{SDK_REQUIREMENTS_FILE}"]
    pins = [line for line in sdk_txt.decode().splitlines() if not line.startswith("#")]
    assert pins == [
        f"beephost-client==0.1.0 --hash=sha256:{hashlib.sha256(client).hexdigest()}",
        f"beephost-protocol==0.1.0 --hash=sha256:{hashlib.sha256(protocol).hexdigest()}",
    ]
    assert b"six==1.17.0" in run.files[f"{WHEELHOUSE}/requirements.txt"]
    assert f"-r {WHEELHOUSE}/{SDK_REQUIREMENTS_FILE}" in run.spec.command[2]
    labels = rig.engine.get_image(image_id).labels  # type: ignore[union-attr]
    assert labels[names.LABEL_ENVIRONMENT_SDK] == sdk_code_version(rig.workspace)
    assert names.LABEL_CODE_VERSION in labels


def test_admin_without_requirements_still_installs_the_sdk(rig: ImageRig) -> None:
    _, run = build(
        rig,
        tag="beephost-test/env:s",
        lock="",
        sdk=True,
    )
    assert run.spec.command[2] == install_script(install=False, sdk=True)
    assert f"{WHEELHOUSE}/requirements.txt" not in run.files


def test_plain_wheelhouse_has_no_sdk(rig: ImageRig) -> None:
    image_id, run = build(rig, tag="beephost-test/env:p", sdk=False)
    assert "packages/client" not in rig.tools.built
    assert f"{WHEELHOUSE}/{SDK_REQUIREMENTS_FILE}" not in run.files
    assert names.LABEL_ENVIRONMENT_SDK not in rig.engine.get_image(image_id).labels  # type: ignore[union-attr]


def test_sdk_version_follows_the_sdk_sources(workspace: Path) -> None:
    before = sdk_code_version(workspace)
    (workspace / "packages/core/src/beephost_core/x.py").write_text("x = 1\n")
    assert sdk_code_version(workspace) == before  # not part of the SDK
    (workspace / "packages/client/src/beephost_client/x.py").write_text("x = 1\n")
    changed = sdk_code_version(workspace)
    assert changed != before
    (workspace / "packages/protocol/src/beephost_protocol/x.py").write_text("x = 1\n")
    assert sdk_code_version(workspace) != changed
    assert source_tree_hash(workspace / "packages/client")  # a real member


# -- the admin environment: resolution and content address ----------------------------


class MemoryBuilder(MemoryImageBuilder):
    """The in-memory builder with ``sdk_version`` like DockerImageBuilder's; it records
    which builds were admin ones."""

    def __init__(self, sdk_version: str | None = "sdk-1") -> None:
        super().__init__(code_version="test-code", sdk_version=sdk_version)
        self.admin_builds: list[tuple[str, bool]] = []

    def build_environment(
        self, tag: str, lock: Lock, admin: bool, log: Callable[[str], None]
    ) -> None:
        super().build_environment(tag, lock, admin, log)
        self.admin_builds.append((tag, admin))


class Resolver:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, requirements: list[str], python: str) -> Lock:
        self.calls.append(list(requirements))
        return Lock("".join(f"{r}\n" for r in sorted(requirements)))


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[..., ControllerService]]:
    stores: list[tuple[SqliteStore, JobRunner]] = []

    def make(builder: MemoryBuilder, resolver: Resolver) -> ControllerService:
        settings = Settings(database=tmp_path / f"ctl{len(stores)}.db")
        store = SqliteStore(settings.database)
        runner = JobRunner(store, 1)
        stores.append((store, runner))
        return ControllerService(settings, store, runner, builder, resolver)

    yield make
    for store, runner in stores:
        runner.shutdown()
        store.close()


class _NoLog(JobLog):
    def __init__(self) -> None:
        pass

    def __call__(self, text: str) -> None:
        pass


def _build(service: ControllerService, name: str, requirements: list[str]) -> None:
    service.store.insert_environment(
        pending_environment(name, requirements, admin=name == "admin")
    )
    service.build_environment(name, _NoLog())
    assert service.environment(name).status == "ready"


def test_sdk_requirements_are_the_protocols_pydantic() -> None:
    requirements = sdk_requirements()
    assert [r.split(">")[0].split("=")[0].strip() for r in requirements] == ["pydantic"]
    assert not any("beephost" in r or "grpc" in r for r in requirements)


def test_admin_resolves_with_the_sdk_and_gets_its_own_image(
    make_service: Callable[..., ControllerService],
) -> None:
    builder, resolver = MemoryBuilder(), Resolver()
    service = make_service(builder, resolver)
    _build(service, "admin", ["six"])
    # A plain environment equal to the admin one does not reuse the admin lock.
    _build(service, "plain", ["six"])
    assert resolver.calls == [["six", *sdk_requirements()], ["six"]]
    plain, admin = service.environment("plain"), service.environment("admin")
    assert admin.lock is not None
    assert "pydantic" in admin.lock
    assert plain.image != admin.image
    assert builder.admin_builds == [(admin.image, True), (plain.image, False)]
    assert admin.image == environment_tag(
        service.settings.environment_repository,
        builder.ensure_base(admin.python, lambda line: None).image_id,
        Lock(admin.lock).digest,
        "test-code+sdk.sdk-1",
    )
    # An equal plain environment reuses the plain lock and image.
    _build(service, "plain-2", ["six"])
    assert len(resolver.calls) == 2
    assert service.environment("plain-2").image == plain.image


def test_the_admin_tag_changes_with_the_sdk(
    make_service: Callable[..., ControllerService],
) -> None:
    images = []
    for sdk in ("sdk-1", "sdk-2"):
        service = make_service(MemoryBuilder(sdk), Resolver())
        _build(service, "admin", [])
        _build(service, "plain", [])
        images.append(
            (service.environment("admin").image, service.environment("plain").image)
        )
    (admin_1, plain_1), (admin_2, plain_2) = images
    assert admin_1 != admin_2
    assert plain_1 == plain_2  # plain images do not carry the SDK


def test_environment_code() -> None:
    assert environment_code("test-code", admin=False, sdk="abc") == "test-code"
    assert environment_code("test-code", admin=True, sdk="abc") == "test-code+sdk.abc"
    # Without the SDK's hash, admin images are still addressed apart.
    assert environment_code("test-code", admin=True) == "test-code+sdk"


# -- DockerImageBuilder: one address, one export ------------------------------------


def _builder(rig: ImageRig, tmp_path: Path) -> DockerImageBuilder:
    settings = Settings(database=tmp_path / "ctl.db", environment_repository="t/env")
    return DockerImageBuilder(
        settings, runtime=rig.engine, inputs=rig.inputs(extra_labels=RUN_LABELS)
    )


def _base_ref(rig: ImageRig) -> BaseImageRef:
    base = rig.base
    return BaseImageRef("3.11", base.tag, base.image_id, base.python_version, "debian")


def test_a_build_exports_each_backend_package_once(
    rig: ImageRig, tmp_path: Path
) -> None:
    builder = _builder(rig, tmp_path)
    lines: list[str] = []
    tag = builder.ensure_environment(
        base=_base_ref(rig), lock=Lock(LOCK), admin=False, log=lines.append
    )
    packages = [f"beephost-{kind}-backend" for kind in BACKEND_TYPES]
    assert sorted(rig.tools.exports) == sorted(packages)
    # The address is the content key of base, lock and the code the image carries.
    image = rig.engine.get_image(tag)
    assert image is not None
    code = image.labels[names.LABEL_CODE_VERSION]
    assert tag == environment_tag("t/env", rig.base.image_id, Lock(LOCK).digest, code)
    # Another environment: its backend images are there, nothing is exported again.
    builder.ensure_environment(
        base=_base_ref(rig), lock=Lock(OTHER_LOCK), admin=False, log=lines.append
    )
    assert sorted(rig.tools.exports) == sorted(packages)


def test_an_equal_environment_is_found_in_one_lookup(
    rig: ImageRig, tmp_path: Path
) -> None:
    builder = _builder(rig, tmp_path)
    first = builder.ensure_environment(
        base=_base_ref(rig), lock=Lock(LOCK), admin=False, log=lambda _line: None
    )
    rig.engine.lookups.clear()
    lines: list[str] = []
    again = builder.ensure_environment(
        base=_base_ref(rig), lock=Lock(LOCK), admin=False, log=lines.append
    )
    assert again == first
    assert rig.engine.lookups == [first]
    assert any("nothing to build" in line for line in lines)
