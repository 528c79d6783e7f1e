"""The controller's image (scripts/release_images.py) on the backend-image recipe,
on FakeEngine and FakeWheelhouseTools."""

import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest
from scripts import release_images
from scripts.controller_image import (
    CONTROLLER_LOCAL_TAG,
    CONTROLLER_SOURCES,
    controller_source_files,
    controller_sources_hash,
    ensure_controller_image,
    export_wheelhouse,
    manual_build_command,
)

from beephost_controller.images.backend import BackendImage
from beephost_controller.images.backend_plan import alias_tags
from beephost_controller.images.base_source import BaseImage
from beephost_controller.images.dockerfile import (
    check_dockerfile,
    dockerfile_instructions,
    parse_label_args,
)
from beephost_controller.images.environment import workspace_code_version
from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.inputs import BuildInputs
from beephost_controller.images.keys import code_version, source_tree_hash
from beephost_controller.images.labels import (
    KIND_CONTROLLER_IMAGE,
    LABEL_BACKEND,
    LABEL_BUILD_KEY,
    LABEL_KIND,
)
from beephost_controller.images.layout import (
    IMAGE_KINDS,
    backend_package,
    default_repository,
    dockerfile_path,
    image_packages,
    wheelhouse_path,
)
from beephost_controller.schemas import BACKEND_TYPES
from beephost_controller.settings import Settings
from beephost_controller.testing import FakeWheelhouseTools
from tests.unit.controller.conftest import REPO, ImageRig, context_misses, write_member


def ensure_controller(rig: ImageRig) -> BackendImage:
    """The controller's image, into ``beephost-test/controller``."""
    return ensure_controller_image(rig.base, rig.engine, rig.inputs())


@pytest.fixture
def controller_workspace(workspace: Path) -> Path:
    """The small workspace plus the controller's member, Dockerfile and lock files,
    and the MCP server's member (the controller's image installs it too)."""
    write_member(workspace, "services/controller", "beephost-controller")
    write_member(workspace, "services/mcp-server", "beephost-mcp")
    shutil.copy(REPO / dockerfile_path("controller"), workspace / "services/controller")
    (workspace / "uv.lock").write_text("version = 1\n")
    (workspace / ".python-version").write_text("3.11\n")
    # The egress proxy's sources, which the controller builds its image from.
    (workspace / "egress-proxy").mkdir()
    (workspace / "egress-proxy/requirements.lock").write_text("mitmproxy==0\n")
    return workspace


def test_controller_names_paths_and_tags() -> None:
    assert (*BACKEND_TYPES, "controller") == IMAGE_KINDS
    assert "controller" not in BACKEND_TYPES  # environment images: three servers
    assert backend_package("controller") == "beephost-controller"
    assert dockerfile_path("controller") == "services/controller/Dockerfile"
    assert wheelhouse_path("controller") == "build/wheelhouse/controller"
    assert default_repository("controller") == "beephost/controller"
    assert alias_tags("beephost/controller", "3.11", [CONTROLLER_LOCAL_TAG]) == (
        "beephost/controller:3.11",
        "beephost/controller:local",
    )
    assert alias_tags("beephost/pipe-backend", "3.11") == (
        "beephost/pipe-backend:3.11",
    )
    assert (backend_package("rpc"), dockerfile_path("http")) == (
        "beephost-rpc-backend",
        "services/backend.Dockerfile",
    )
    assert dockerfile_path("controller") == "services/controller/Dockerfile"


def test_the_controller_dockerfile_builds_offline_as_non_root() -> None:
    text = (REPO / dockerfile_path("controller")).read_text()
    assert check_dockerfile(text) == []
    instructions = dockerfile_instructions(text)
    assert instructions[0].args == "BASE_IMAGE=beephost/python:3.11"
    final = [i for i in instructions if i.stage == 1]
    assert [i.args for i in final if i.name == "USER"] == ["10001:10001"]
    healthcheck = next(i.args for i in final if i.name == "HEALTHCHECK")
    assert "--interval=5s --timeout=5s --start-period=30s --retries=3" in healthcheck
    assert '["/opt/beephost/bin/beephost-controller", "healthcheck"]' in healthcheck
    assert [i.args for i in final if i.name == "ENTRYPOINT"] == [
        '["/opt/beephost/bin/beephost-controller"]'
    ]
    assert [i.args for i in final if i.name in ("VOLUME", "EXPOSE")] == [
        "/var/lib/beephost",
        "8600",
    ]
    env = " ".join(i.args for i in final if i.name == "ENV").split()
    for setting in (
        "BEEPHOST_CONTROLLER_WORKSPACE=/opt/beephost-src",
        "BEEPHOST_CONTROLLER_HOST=0.0.0.0",
        "BEEPHOST_CONTROLLER_PORT=8600",
        "BEEPHOST_CONTROLLER_DATABASE=/var/lib/beephost/controller.db",
        "HOME=/var/lib/beephost",
        "UV=/opt/beephost/bin/uv",
        "PATH=/opt/beephost/bin:$PATH",
    ):
        assert setting in env
    # The sources go through the build stage; .dockerignore through the wheelhouse
    # (docker-py sends the engine a rewritten one).
    build = " ".join(i.args for i in instructions if i.stage == 0 and i.name == "COPY")
    for source in CONTROLLER_SOURCES:
        if source == ".dockerignore":
            assert "/wheels/dockerignore /opt/beephost-src/.dockerignore" in text
        else:
            assert source in build.split() or f"{source}/" in build.split()
    assert [i.args for i in final if i.name == "COPY"] == ["--from=build /opt/ /opt/"]
    labels = parse_label_args(
        next(i.args for i in final if i.name == "LABEL"), {"CODE_VERSION": "c"}
    )
    assert labels[LABEL_KIND] == KIND_CONTROLLER_IMAGE
    assert LABEL_BACKEND not in labels


def test_controller_image_tags_labels_and_carries_the_sources(
    rig: ImageRig, controller_workspace: Path, tmp_path: Path
) -> None:
    image = ensure_controller(rig)
    assert image.built is True
    assert image.kind == "controller"
    assert image.tag == f"beephost-test/controller:3.11-{image.build_key[:16]}"
    assert image.alias == "beephost-test/controller:3.11"
    assert image.aliases == (image.alias, "beephost-test/controller:local")
    for tag in (image.tag, *image.aliases):
        info = rig.engine.get_image(tag)
        assert info is not None
        assert info.id == image.image_id
    info = rig.engine.get_image(image.tag)
    assert info is not None
    assert info.labels[LABEL_KIND] == KIND_CONTROLLER_IMAGE
    assert LABEL_BACKEND not in info.labels
    assert info.labels[LABEL_BUILD_KEY] == image.build_key
    assert info.labels["org.opencontainers.image.title"] == "beephost-controller"
    members = (
        "packages/core",
        "packages/protocol",
        "services/controller",
        "services/mcp-server",
    )
    assert sorted(rig.tools.built) == list(members)
    assert image.code_version == code_version(
        {m: source_tree_hash(controller_workspace / m) for m in members}
    )
    dockerfile = (REPO / dockerfile_path("controller")).read_text()
    assert context_misses(rig.engine.builds[-1], dockerfile) == []
    assert not list((tmp_path / "cache").glob("context-*"))

    again = ensure_controller(rig)
    assert (again.built, again.image_id) == (False, image.image_id)


def test_controller_key_is_independent_of_the_backends(
    rig: ImageRig, controller_workspace: Path
) -> None:
    def build(kind: str) -> BackendImage:
        return ensure_controller(rig) if kind == "controller" else rig.backend(kind)

    pipe, controller = build("pipe"), build("controller")
    code = workspace_code_version(controller_workspace, rig.tools)
    assert controller.build_key != pipe.build_key

    # The controller's own source: a new controller image, the backends untouched.
    module = controller_workspace / "services/controller/src/beephost_controller"
    (module / "app.py").write_text("app = 1\n")
    assert build("pipe").tag == pipe.tag
    assert build("pipe").built is False
    changed = build("controller")
    assert changed.built is True
    assert changed.tag != controller.tag
    assert workspace_code_version(controller_workspace, rig.tools) == code
    assert rig.engine.get_image(controller.image_id) is None  # the old one is retired
    assert rig.engine.get_image(pipe.tag) is not None  # never a backend image

    # The backends' Dockerfile is not the controller's member, but it carries it.
    dockerfile = controller_workspace / dockerfile_path("rpc")
    dockerfile.write_text(dockerfile.read_text() + "# changed\n")
    assert build("controller").tag != changed.tag
    assert build("pipe").tag != pipe.tag

    # Caches, virtualenvs and build outputs are not carried.
    before = controller_sources_hash(controller_workspace)
    for junk in (
        "services/controller/.venv/bin/python",
        "services/controller/src/beephost_controller/__pycache__/app.cpython-311.pyc",
        "packages/core/dist/beephost_core-0.1.0-py3-none-any.whl",
        "packages/core/build/lib/x.py",
        "packages/core/src/beephost_core.egg-info/PKG-INFO",
        "services/.mypy_cache/x.json",
    ):
        (controller_workspace / junk).parent.mkdir(parents=True, exist_ok=True)
        (controller_workspace / junk).write_text("junk\n")
    assert controller_sources_hash(controller_workspace) == before
    files = controller_source_files(controller_workspace)
    assert "uv.lock" in files
    assert "services/controller/Dockerfile" in files
    assert not [f for f in files if "junk" in (controller_workspace / f).read_text()]


def test_controller_needs_the_lock_and_unknown_kinds_fail(
    rig: ImageRig, controller_workspace: Path
) -> None:
    (controller_workspace / "uv.lock").unlink()
    with pytest.raises(BackendImageError, match=r"uv\.lock"):
        ensure_controller(rig)
    with pytest.raises(BackendImageError, match="unknown backend 'controllers'"):
        rig.backend("controllers")
    assert rig.engine.get_image("beephost-test/controller:local") is None


def test_controller_wheelhouse_export(
    base: BaseImage, controller_workspace: Path, tmp_path: Path
) -> None:
    wheelhouse = export_wheelhouse(
        "controller",
        base,
        BuildInputs(
            workspace=controller_workspace,
            cache_dir=tmp_path / "cache",
            tools=FakeWheelhouseTools(),
        ),
    )
    assert wheelhouse == controller_workspace / "build/wheelhouse/controller"
    assert (wheelhouse / "requirements.txt").is_file()
    assert (wheelhouse / "dockerignore").read_text() == (
        controller_workspace / ".dockerignore"
    ).read_text()


def test_export_wheelhouse_with_controller_builds_nothing(
    base: BaseImage,
    controller_workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    rig: ImageRig,
) -> None:
    # `scripts/build-images --controller --export-wheelhouse` (the controller
    # Dockerfile's header): the wheelhouse for a manual `docker build`, no image.
    exported: list[str] = []

    def export(kind: str, *_: object, **__: object) -> Path:
        exported.append(kind)
        return controller_workspace / "build/wheelhouse" / kind

    monkeypatch.setattr(
        release_images,
        "BuildInputs",
        lambda: BuildInputs(
            workspace=controller_workspace, tools=FakeWheelhouseTools()
        ),
    )
    monkeypatch.setattr(release_images, "ensure_base_image", lambda *_, **__: base)
    monkeypatch.setattr(release_images, "export_wheelhouse", export)
    args = release_images._parser().parse_args(
        ["build-images", "--controller", "--export-wheelhouse"]
    )
    records: list[Mapping[str, object]] = []
    release_images._build(args, Settings(), rig.engine, records.append)
    assert exported == ["controller"]
    assert [r["image"] for r in records] == ["base", "controller"]
    assert "wheelhouse" in records[-1]
    assert rig.engine.builds == []
    assert records[-1]["docker_build"] == (
        "docker build --network=none -f services/controller/Dockerfile"
        f" --build-arg=BASE_IMAGE={base.tag}"
        " --build-arg=WHEELHOUSE=build/wheelhouse/controller"
        " -t beephost/controller:manual ."
    )


def test_a_backends_manual_build_names_its_kind(base: BaseImage) -> None:
    command = manual_build_command("rpc", base, "beephost/rpc-backend:manual")
    assert command[:5] == [
        "docker",
        "build",
        "--network=none",
        "-f",
        "services/backend.Dockerfile",
    ]
    assert {
        "--build-arg=KIND=rpc",
        "--build-arg=SETTINGS_PREFIX=BEEPHOST_RPC_BACKEND_",
        "--build-arg=LISTEN_SETTING=HOST",
        "--build-arg=LISTEN_VALUE=0.0.0.0",
        "--build-arg=PORTS=50051 9465",
    } <= set(command)
    assert command[-3:] == ["-t", "beephost/rpc-backend:manual", "."]


def test_the_controller_image_also_installs_the_mcp_server() -> None:
    # compose's mcp service and the chart's mcp component run this image as
    # beephost-mcp: its closure and the build's import check include the server.
    assert image_packages("controller") == ("beephost-controller", "beephost-mcp")
    assert image_packages("http") == ("beephost-http-backend",)
    dockerfile = (REPO / dockerfile_path("controller")).read_text()
    assert "beephost_mcp.server" in dockerfile
