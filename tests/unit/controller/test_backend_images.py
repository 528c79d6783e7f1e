"""Backend-image logic on FakeRuntime and FakeWheelhouseTools: no engine, uv or network."""

import dataclasses
import shutil
from pathlib import Path

import pytest

from beephost_controller.ports import ContainerRuntimeError, ImageNotFoundError
from beephost_controller.runtime.backend_images import (
    BACKEND_KINDS,
    CONTROLLER_SOURCES,
    IMAGE_KINDS,
    KIND_BACKEND_BUILD,
    KIND_BACKEND_IMAGE,
    KIND_CONTROLLER_IMAGE,
    LABEL_BACKEND,
    LABEL_BUILD_KEY,
    LABEL_CODE_VERSION,
    BackendImage,
    BackendImageError,
    BackendKind,
    BuildPlan,
    BuiltWheel,
    UvTools,
    alias_tag,
    alias_tags,
    backend_package,
    build_key,
    check_dockerfile,
    code_version,
    controller_source_files,
    controller_sources_hash,
    default_repository,
    dockerfile_instructions,
    dockerfile_path,
    ensure_backend_image,
    ensure_controller_image,
    export_wheelhouse,
    image_tag,
    parse_export,
    parse_label_args,
    python_minor_of,
    render_requirements,
    source_tree_hash,
    substitute,
    wheelhouse_path,
)
from beephost_controller.runtime.base_images import (
    LABEL_KIND,
    LABEL_PYTHON_VERSION,
    BaseImage,
)
from beephost_controller.runtime.environment_images import workspace_code_version
from beephost_controller.testing import FakeRuntime, FakeWheelhouseTools

REPO = Path(__file__).resolve().parents[3]
HASH_A = "sha256:" + "a" * 64
HASH_B = "sha256:" + "b" * 64
EXPORT = f"""\
./packages/core
./packages/protocol
./services/pipe-backend
annotated-types==0.8.0 \\
    --hash={HASH_B} \\
    --hash={HASH_A}
    # via pydantic
colorama==0.4.6 ; sys_platform == 'win32' \\
    --hash={HASH_A}
Typing_Extensions==4.16.0 --hash={HASH_A}
"""


# -- fixtures -------------------------------------------------------------------------


def write_member(root: Path, path: str, name: str) -> None:
    member = root / path
    module = member / "src" / name.replace("-", "_")
    module.mkdir(parents=True)
    (member / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.1.0"\n'
    )
    (module / "__init__.py").write_text(f'"""{name}."""\n')


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A small uv workspace with the real Dockerfiles and .dockerignore."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[tool.uv.workspace]\nmembers = ["packages/*", "services/*"]\n'
    )
    shutil.copy(REPO / ".dockerignore", root / ".dockerignore")
    write_member(root, "packages/core", "beephost-core")
    write_member(root, "packages/protocol", "beephost-protocol")
    for kind in BACKEND_KINDS:
        write_member(root, f"services/{kind}-backend", f"beephost-{kind}-backend")
        shutil.copy(REPO / dockerfile_path(kind), root / dockerfile_path(kind))
    return root


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture
def base(runtime: FakeRuntime, tmp_path: Path) -> BaseImage:
    tarball = tmp_path / "rootfs.tar.gz"
    tarball.write_bytes(b"rootfs")
    info = runtime.import_image(
        tarball,
        "beephost-test/python:3.11",
        changes=['LABEL io.beephost.python.version="3.11.2"'],
    )
    return BaseImage(
        tag="beephost-test/python:3.11",
        image_id=info.id,
        python_version="3.11.2",
        source="debian",
        built=True,
    )


@pytest.fixture
def tools() -> FakeWheelhouseTools:
    return FakeWheelhouseTools()


def ensure(
    kind: str,
    base: BaseImage,
    runtime: FakeRuntime,
    workspace: Path,
    tools: FakeWheelhouseTools,
    tmp_path: Path,
    **kwargs: object,
) -> BackendImage:
    return ensure_backend_image(
        kind,
        base,
        runtime,
        workspace=workspace,
        cache_dir=tmp_path / "cache",
        repository=f"beephost-test/{kind}-backend",
        tools=tools,
        **kwargs,  # type: ignore[arg-type]
    )


# -- pure logic -----------------------------------------------------------------------


def test_parse_export_members_pins_markers_and_hashes() -> None:
    export = parse_export(EXPORT)
    assert export.members == (
        "packages/core",
        "packages/protocol",
        "services/pipe-backend",
    )
    names = [requirement.name for requirement in export.requirements]
    assert names == ["annotated-types", "colorama", "typing-extensions"]
    annotated, colorama, typing = export.requirements
    assert annotated.hashes == (HASH_A, HASH_B)  # sorted: input order is irrelevant
    assert colorama.marker == "sys_platform == 'win32'"
    assert (
        colorama.line() == f"colorama==0.4.6 ; sys_platform == 'win32' --hash={HASH_A}"
    )
    assert colorama.line(marker=False) == f"colorama==0.4.6 --hash={HASH_A}"
    assert typing.version == "4.16.0"
    assert typing.marker is None


@pytest.mark.parametrize(
    "text",
    ["fastapi>=0.115 --hash=" + HASH_A, "fastapi==0.115.0", "-r other.txt"],
    ids=["unpinned", "unhashed", "include"],
)
def test_parse_export_refuses_what_is_not_locked(text: str) -> None:
    with pytest.raises(BackendImageError):
        parse_export(text + "\n")


def test_requirements_pin_our_wheels_by_hash(tmp_path: Path) -> None:
    export = parse_export(EXPORT)
    wheel = BuiltWheel(
        "beephost-core", "0.1.0", tmp_path / "beephost_core.whl", "c" * 64
    )
    text = render_requirements(export.requirements, [wheel])
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines[-1] == f"beephost-core==0.1.0 --hash=sha256:{'c' * 64}"
    assert all("==" in line and "--hash=sha256:" in line for line in lines)


def plan(**overrides: object) -> BuildPlan:
    values: dict[str, object] = {
        "kind": "pipe",
        "python_minor": "3.11",
        "base_image_id": "sha256:" + "1" * 64,
        "dockerfile": "FROM x\n",
        "dockerignore": ".git\n",
        "requirements": ("a==1 --hash=" + HASH_A,),
        "members": {"packages/core": "f" * 64},
        "installer": "uv 0.13.8",
        "extra_labels": {},
    }
    values.update(overrides)
    return BuildPlan(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "http"},
        {"python_minor": "3.13"},
        {"base_image_id": "sha256:" + "2" * 64},
        {"dockerfile": "FROM y\n"},
        {"dockerignore": ""},
        {"requirements": ("a==2 --hash=" + HASH_A,)},
        {"members": {"packages/core": "e" * 64}},
        {"installer": "pip (the base image's bundled wheel)"},
        {"extra_labels": {"io.beephost.test.run": "x"}},
    ],
    ids=lambda change: next(iter(change)),
)
def test_every_input_changes_the_key(change: dict[str, object]) -> None:
    assert build_key(plan(**change)) != build_key(plan())


def test_key_is_stable_and_names_the_tag() -> None:
    first, second = plan(), plan(members={"packages/core": "f" * 64})
    assert build_key(first) == build_key(second)
    assert len(first.key) == 64
    assert image_tag("beephost/pipe-backend", "3.11", first.key) == (
        f"beephost/pipe-backend:3.11-{first.key[:16]}"
    )
    assert alias_tag("beephost/pipe-backend", "3.11") == "beephost/pipe-backend:3.11"
    assert python_minor_of("3.14.0rc3") == "3.14"
    with pytest.raises(BackendImageError):
        python_minor_of("2.7.18")


def test_source_tree_hash_follows_sources_not_caches(workspace: Path) -> None:
    member = workspace / "packages/core"
    before = source_tree_hash(member)
    cache = member / "src/beephost_core/__pycache__"
    cache.mkdir()
    (cache / "__init__.cpython-311.pyc").write_bytes(b"\0")
    (member / "src/beephost_core/stale.pyc").write_bytes(b"\0")
    assert source_tree_hash(member) == before
    (member / "src/beephost_core/__init__.py").write_text('"""changed."""\n')
    changed = source_tree_hash(member)
    assert changed != before
    (member / "src/beephost_core/__init__.py").rename(member / "src/beephost_core/a.py")
    assert source_tree_hash(member) not in (before, changed)
    with pytest.raises(BackendImageError, match="no pyproject"):
        source_tree_hash(workspace / "packages")


def test_dockerfile_instructions_join_continuations_and_count_stages() -> None:
    text = (
        "# comment\nARG BASE=x\nFROM ${BASE} AS build\nRUN a \\\n"
        '    # inner comment\n    && b\nFROM $BASE\nLABEL a=1 b="two words"\n'
    )
    instructions = dockerfile_instructions(text)
    assert [(i.name, i.stage) for i in instructions] == [
        ("ARG", -1),
        ("FROM", 0),
        ("RUN", 0),
        ("FROM", 1),
        ("LABEL", 1),
    ]
    assert instructions[2].args.split() == ["a", "&&", "b"]
    assert substitute("${BASE}:$TAG-$none", {"BASE": "img", "TAG": "1"}) == "img:1-"
    assert parse_label_args(instructions[4].args, {}) == {"a": "1", "b": "two words"}


@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_the_real_dockerfiles_build_offline_as_non_root(kind: BackendKind) -> None:
    text = (REPO / dockerfile_path(kind)).read_text()
    assert check_dockerfile(text) == []
    final = [i for i in dockerfile_instructions(text) if i.stage == 1]
    assert [i.args for i in final if i.name == "USER"] == ["10001:10001"]
    healthcheck = next(i.args for i in final if i.name == "HEALTHCHECK")
    assert f'"/opt/beephost/bin/beephost-{kind}-backend", "healthcheck"' in healthcheck
    env = " ".join(i.args for i in final if i.name == "ENV")
    assert f"BEEPHOST_{kind.upper()}_BACKEND_PYTHON=/usr/bin/python3" in env
    assert "/opt/beephost/bin" not in env  # PATH: workers must find the bare python3


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "# syntax=docker/dockerfile:1\nFROM a AS b\nFROM a\nUSER 1\nHEALTHCHECK NONE\n",
            "syntax",
        ),
        (
            "FROM a AS b\nRUN --mount=type=cache,target=/x true\nFROM a\nUSER 1\nHEALTHCHECK NONE\n",
            "BuildKit",
        ),
        ("FROM a\nUSER 1\nHEALTHCHECK NONE\n", "stage"),
        ("FROM a AS b\nFROM a\nUSER root\nHEALTHCHECK NONE\n", "USER"),
        ("FROM a AS b\nFROM a\nHEALTHCHECK NONE\n", "USER"),
        ("FROM a AS b\nFROM a\nUSER 10001\n", "HEALTHCHECK"),
        (
            "FROM a AS b\nFROM a\nCOPY w /wheels\nUSER 1\nHEALTHCHECK NONE\n",
            "wheelhouse",
        ),
    ],
    ids=["syntax", "mount", "one-stage", "root", "no-user", "no-health", "wheels"],
)
def test_check_dockerfile_finds_problems(text: str, problem: str) -> None:
    assert any(problem in found for found in check_dockerfile(text))


def test_installer_falls_back_to_pip_without_a_linux_uv(tmp_path: Path) -> None:
    shim = tmp_path / "uv"
    shim.write_text('#!/bin/sh\nexec real-uv "$@"\n')
    assert UvTools(str(shim)).installer() == (
        "pip (the base image's bundled wheel)",
        None,
    )
    macho = tmp_path / "uv-macos"
    macho.write_bytes(b"\xcf\xfa\xed\xfe" + b"\0" * 32)
    assert UvTools(str(macho)).installer()[1] is None


# -- ensure_backend_image on the fake -----------------------------------------------------


@pytest.mark.parametrize("kind", BACKEND_KINDS)
def test_build_labels_tags_and_leaves_no_build_stage(
    kind: str,
    base: BaseImage,
    runtime: FakeRuntime,
    workspace: Path,
    tools: FakeWheelhouseTools,
    tmp_path: Path,
) -> None:
    image = ensure(kind, base, runtime, workspace, tools, tmp_path)
    assert image.built is True
    assert image.tag == f"beephost-test/{kind}-backend:3.11-{image.build_key[:16]}"
    assert image.alias == f"beephost-test/{kind}-backend:3.11"
    assert image.python_version == "3.11.2"
    info = runtime.get_image(image.alias)
    assert info is not None
    assert info.id == image.image_id
    assert info.labels[LABEL_KIND] == KIND_BACKEND_IMAGE
    assert info.labels[LABEL_BACKEND] == kind
    assert info.labels[LABEL_PYTHON_VERSION] == base.python_version
    assert info.labels[LABEL_CODE_VERSION] == image.code_version
    assert info.labels[LABEL_BUILD_KEY] == image.build_key
    assert info.labels["org.opencontainers.image.title"] == f"beephost-{kind}-backend"
    # The fake keeps the build stage as the legacy builder does; it must be gone.
    assert runtime.remove_by_labels({LABEL_KIND: KIND_BACKEND_BUILD}) == []
    assert sorted(tools.built) == [
        "packages/core",
        "packages/protocol",
        f"services/{kind}-backend",
    ]
    assert not list((tmp_path / "cache").glob("context-*"))  # contexts are transient


def test_second_call_is_a_cache_hit_that_does_no_work(
    base: BaseImage,
    runtime: FakeRuntime,
    workspace: Path,
    tools: FakeWheelhouseTools,
    tmp_path: Path,
) -> None:
    first = ensure("pipe", base, runtime, workspace, tools, tmp_path)
    operations, built, downloads = (
        list(runtime.operations),
        list(tools.built),
        list(tools.downloads),
    )
    second = ensure("pipe", base, runtime, workspace, tools, tmp_path)
    assert second.built is False
    assert (second.tag, second.image_id) == (first.tag, first.image_id)
    assert runtime.operations == operations
    assert (tools.built, tools.downloads) == (built, downloads)


def test_alias_moved_away_is_put_back_on_a_hit(
    base: BaseImage,
    runtime: FakeRuntime,
    workspace: Path,
    tools: FakeWheelhouseTools,
    tmp_path: Path,
) -> None:
    first = ensure("pipe", base, runtime, workspace, tools, tmp_path)
    runtime.tag_image(base.image_id, first.alias)
    again = ensure("pipe", base, runtime, workspace, tools, tmp_path)
    assert again.built is False
    alias = runtime.get_image(first.alias)
    assert alias is not None
    assert alias.id == first.image_id


def test_source_change_rebuilds_reuses_the_wheel_pool_and_retires_the_old_image(
    base: BaseImage,
    runtime: FakeRuntime,
    workspace: Path,
    tools: FakeWheelhouseTools,
    tmp_path: Path,
) -> None:
    first = ensure("pipe", base, runtime, workspace, tools, tmp_path)
    assert len(tools.downloads) == 1
    (workspace / "packages/core/src/beephost_core/__init__.py").write_text("x = 1\n")
    second = ensure("pipe", base, runtime, workspace, tools, tmp_path)
    assert second.built is True
    assert second.tag != first.tag
    assert second.code_version != first.code_version
    assert len(tools.downloads) == 1  # third-party wheels came from the pool
    assert runtime.get_image(first.image_id) is None
    alias = runtime.get_image(second.alias)
    assert alias is not None
    assert alias.id == second.image_id


def test_a_new_base_image_changes_the_tag(
    base: BaseImage,
    runtime: FakeRuntime,
    workspace: Path,
    tools: FakeWheelhouseTools,
    tmp_path: Path,
) -> None:
    first = ensure("rpc", base, runtime, workspace, tools, tmp_path)
    info = runtime.build_labelled_image(base.image_id, base.tag, {"x.y": "z"})
    rebased = dataclasses.replace(base, image_id=info.id)
    second = ensure("rpc", rebased, runtime, workspace, tools, tmp_path)
    assert second.built is True
    assert second.tag != first.tag
    assert second.base_image_id == info.id


def test_extra_labels_reach_the_image_and_bad_keys_are_refused(
    base: BaseImage,
    runtime: FakeRuntime,
    workspace: Path,
    tools: FakeWheelhouseTools,
    tmp_path: Path,
) -> None:
    labels = {"io.beephost.test.run": "unit-1"}
    image = ensure(
        "http", base, runtime, workspace, tools, tmp_path, extra_labels=labels
    )
    info = runtime.get_image(image.tag)
    assert info is not None
    assert info.labels["io.beephost.test.run"] == "unit-1"
    assert runtime.remove_by_labels(labels) == [image.image_id]
    with pytest.raises(Exception, match="invalid label key"):
        ensure(
            "http",
            base,
            runtime,
            workspace,
            tools,
            tmp_path,
            extra_labels={"Bad Key": "x"},
        )


def test_missing_base_and_unknown_kind_fail_before_any_work(
    base: BaseImage,
    runtime: FakeRuntime,
    workspace: Path,
    tools: FakeWheelhouseTools,
    tmp_path: Path,
) -> None:
    with pytest.raises(BackendImageError, match="unknown backend"):
        ensure("ftp", base, runtime, workspace, tools, tmp_path)
    runtime.remove_image(base.image_id, force=True)
    with pytest.raises(BackendImageError, match="is gone"):
        ensure("pipe", base, runtime, workspace, tools, tmp_path)
    assert tools.exports == []


def test_marked_requirement_without_a_wheel_is_skipped_unmarked_one_fails(
    base: BaseImage,
    runtime: FakeRuntime,
    workspace: Path,
    tmp_path: Path,
) -> None:
    marked = FakeWheelhouseTools(
        requirements={
            "beephost-pipe-backend": [
                "pydantic==2.14.3",
                "pywin32==311 ; sys_platform == 'win32'",
            ]
        },
        unavailable=frozenset({"pywin32"}),
    )
    image = ensure("pipe", base, runtime, workspace, marked, tmp_path)
    assert image.built is True
    assert len(marked.downloads) == 2  # the required batch, then the marked one alone
    assert "sys_platform" not in marked.downloads[1][0]  # pip would judge the host

    missing = FakeWheelhouseTools(unavailable=frozenset({"pydantic-core"}))
    with pytest.raises(BackendImageError, match="pydantic-core"):
        ensure("http", base, runtime, workspace, missing, tmp_path)
    assert runtime.get_image("beephost-test/http-backend:3.11") is None


def test_exported_wheelhouse_is_hash_locked_with_the_uv_binary(
    base: BaseImage, workspace: Path, tmp_path: Path
) -> None:
    uv = tmp_path / "uv-binary"
    uv.write_bytes(b"\x7fELF fake")
    tools = FakeWheelhouseTools(uv_binary=uv)
    wheelhouse = export_wheelhouse(
        "pipe", base, workspace=workspace, cache_dir=tmp_path / "cache", tools=tools
    )
    assert wheelhouse == workspace / "build/wheelhouse/pipe-backend"
    assert (wheelhouse / "python-minor").read_text() == "3.11\n"
    assert (wheelhouse / "uv").read_bytes() == uv.read_bytes()
    lines = [
        line
        for line in (wheelhouse / "requirements.txt").read_text().splitlines()
        if not line.startswith("#")
    ]
    assert len(lines) == 6  # three pins and our three wheels
    assert all("--hash=sha256:" in line for line in lines)
    assert len(list(wheelhouse.glob("*.whl"))) == 6


def test_fake_build_checks_the_context_against_the_dockerfile(
    base: BaseImage, runtime: FakeRuntime, workspace: Path
) -> None:
    # Without the wheelhouse the Dockerfile's COPY has nothing to copy.
    with pytest.raises(ContainerRuntimeError, match="not in the build context"):
        runtime.build_image(
            workspace,
            dockerfile=dockerfile_path("pipe"),
            tag="beephost-test/pipe-backend:x",
            buildargs={"BASE_IMAGE": base.image_id},
        )
    with pytest.raises(ImageNotFoundError):
        runtime.build_image(
            workspace,
            dockerfile=dockerfile_path("pipe"),
            tag="beephost-test/pipe-backend:x",
            buildargs={"BASE_IMAGE": "beephost-test/python:2.7"},
        )


# -- the controller's image: a fourth kind, same machinery -----------------------------


@pytest.fixture
def controller_workspace(workspace: Path) -> Path:
    """The small workspace plus the controller's member, Dockerfile and lock files."""
    write_member(workspace, "services/controller", "beephost-controller")
    shutil.copy(REPO / dockerfile_path("controller"), workspace / "services/controller")
    (workspace / "uv.lock").write_text("version = 1\n")
    (workspace / ".python-version").write_text("3.11\n")
    return workspace


def test_backend_keys_are_unchanged_by_the_controller_kind() -> None:
    # The key of this plan before the controller became a kind: no backend tag moved.
    assert build_key(plan()) == (
        "2f6fd373c87b6d280f691e638e5077a1e8304b64d6ea9b39ebd007209df60ce3"
    )
    assert plan(sources=None).key == plan().key
    controller = plan(kind="controller", sources="s" * 64)
    assert controller.key not in (plan().key, plan(kind="controller").key)
    assert controller.key != plan(kind="controller", sources="t" * 64).key


def test_controller_names_paths_and_tags() -> None:
    assert (*BACKEND_KINDS, "controller") == IMAGE_KINDS
    assert "controller" not in BACKEND_KINDS  # environment images: three servers
    assert backend_package("controller") == "beephost-controller"
    assert dockerfile_path("controller") == "services/controller/Dockerfile"
    assert wheelhouse_path("controller") == "build/wheelhouse/controller"
    assert default_repository("controller") == "beephost/controller"
    assert alias_tags("controller", "beephost/controller", "3.11") == (
        "beephost/controller:3.11",
        "beephost/controller:local",
    )
    assert alias_tags("pipe", "beephost/pipe-backend", "3.11") == (
        "beephost/pipe-backend:3.11",
    )
    assert (backend_package("rpc"), dockerfile_path("http")) == (
        "beephost-rpc-backend",
        "services/http-backend/Dockerfile",
    )


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
    base: BaseImage,
    runtime: FakeRuntime,
    controller_workspace: Path,
    tools: FakeWheelhouseTools,
    tmp_path: Path,
) -> None:
    # The fake build fails if a COPY source (pyproject.toml, uv.lock, packages/, ...)
    # is missing from the context.
    image = ensure_controller_image(
        base,
        runtime,
        workspace=controller_workspace,
        cache_dir=tmp_path / "cache",
        repository="beephost-test/controller",
        tools=tools,
    )
    assert image.built is True
    assert image.kind == "controller"
    assert image.tag == f"beephost-test/controller:3.11-{image.build_key[:16]}"
    assert image.alias == "beephost-test/controller:3.11"
    assert image.aliases == (image.alias, "beephost-test/controller:local")
    for tag in (image.tag, *image.aliases):
        info = runtime.get_image(tag)
        assert info is not None
        assert info.id == image.image_id
    info = runtime.get_image(image.tag)
    assert info is not None
    assert info.labels[LABEL_KIND] == KIND_CONTROLLER_IMAGE
    assert LABEL_BACKEND not in info.labels
    assert info.labels[LABEL_BUILD_KEY] == image.build_key
    assert info.labels["org.opencontainers.image.title"] == "beephost-controller"
    members = ("packages/core", "packages/protocol", "services/controller")
    assert sorted(tools.built) == list(members)
    assert image.code_version == code_version(
        {m: source_tree_hash(controller_workspace / m) for m in members}
    )
    assert runtime.remove_by_labels({LABEL_KIND: KIND_BACKEND_BUILD}) == []
    assert not list((tmp_path / "cache").glob("context-*"))

    again = ensure_backend_image(
        "controller",
        base,
        runtime,
        workspace=controller_workspace,
        cache_dir=tmp_path / "cache",
        repository="beephost-test/controller",
        tools=tools,
    )
    assert (again.built, again.image_id) == (False, image.image_id)


def test_controller_key_is_independent_of_the_backends(
    base: BaseImage,
    runtime: FakeRuntime,
    controller_workspace: Path,
    tools: FakeWheelhouseTools,
    tmp_path: Path,
) -> None:
    def build(kind: str) -> BackendImage:
        return ensure(kind, base, runtime, controller_workspace, tools, tmp_path)

    pipe, controller = build("pipe"), build("controller")
    code = workspace_code_version(controller_workspace, tools)
    assert controller.build_key != pipe.build_key

    # The controller's own source: a new controller image, the backends untouched.
    module = controller_workspace / "services/controller/src/beephost_controller"
    (module / "app.py").write_text("app = 1\n")
    assert build("pipe").tag == pipe.tag
    assert build("pipe").built is False
    changed = build("controller")
    assert changed.built is True
    assert changed.tag != controller.tag
    assert workspace_code_version(controller_workspace, tools) == code
    assert runtime.get_image(controller.image_id) is None  # the old one is retired
    assert runtime.get_image(pipe.tag) is not None  # never a backend image

    # A backend's Dockerfile is not the controller's member, but it carries it.
    dockerfile = controller_workspace / dockerfile_path("rpc")
    dockerfile.write_text(dockerfile.read_text() + "# changed\n")
    assert build("controller").tag != changed.tag
    assert build("pipe").tag == pipe.tag

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
    base: BaseImage,
    runtime: FakeRuntime,
    controller_workspace: Path,
    tools: FakeWheelhouseTools,
    tmp_path: Path,
) -> None:
    (controller_workspace / "uv.lock").unlink()
    with pytest.raises(BackendImageError, match=r"uv\.lock"):
        ensure("controller", base, runtime, controller_workspace, tools, tmp_path)
    with pytest.raises(BackendImageError, match="unknown backend 'controllers'"):
        ensure("controllers", base, runtime, controller_workspace, tools, tmp_path)
    assert runtime.get_image("beephost-test/controller:local") is None


def test_controller_wheelhouse_export(
    base: BaseImage, controller_workspace: Path, tmp_path: Path
) -> None:
    wheelhouse = export_wheelhouse(
        "controller",
        base,
        workspace=controller_workspace,
        cache_dir=tmp_path / "cache",
        tools=FakeWheelhouseTools(),
    )
    assert wheelhouse == controller_workspace / "build/wheelhouse/controller"
    assert (wheelhouse / "requirements.txt").is_file()
    assert (wheelhouse / "dockerignore").read_text() == (
        controller_workspace / ".dockerignore"
    ).read_text()


# -- UvTools: the downloads trust the controller's CA bundle and index ---------------------


@pytest.fixture
def recording_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake uv that records its arguments and environment; no settings variables."""
    monkeypatch.delenv("BEEPHOST_CONTROLLER_CA_BUNDLE", raising=False)
    monkeypatch.delenv("BEEPHOST_CONTROLLER_INDEX_URL", raising=False)
    # The path is in the script: a tool's environment is not the caller's (tool_env).
    record = tmp_path / "record"
    uv = tmp_path / "fake-uv"
    uv.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}.args"\nenv > "{record}.env"\n'
    )
    uv.chmod(0o755)
    return uv


def recorded(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    args = (tmp_path / "record.args").read_text().splitlines()
    env = dict(
        line.split("=", 1)
        for line in (tmp_path / "record.env").read_text().splitlines()
        if "=" in line
    )
    return args, env


LINE = "six==1.17.0 --hash=" + HASH_A


def test_download_trusts_the_ca_bundle_and_uses_the_index(
    recording_uv: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    tools = UvTools(
        str(recording_uv), ca_bundle=bundle, index_url="https://mirror.test/simple"
    )
    tools.download([LINE], "3.11", tmp_path)
    args, env = recorded(tmp_path)
    assert args[args.index("--cert") + 1] == str(bundle)  # pip
    assert args[args.index("--index-url") + 1] == "https://mirror.test/simple"
    assert env["SSL_CERT_FILE"] == str(bundle)  # uv, which fetches pip
    assert env["UV_DEFAULT_INDEX"] == "https://mirror.test/simple"

    # uv export keeps the lock's index (--locked would see another), not the bundle.
    tools.export(tmp_path, "beephost-pipe-backend")
    args, env = recorded(tmp_path)
    assert env["SSL_CERT_FILE"] == str(bundle)
    assert "UV_DEFAULT_INDEX" not in env
    assert "--index-url" not in args


def test_download_reads_the_controller_settings_variables(
    recording_uv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DockerImageBuilder makes UvTools() without arguments: the variables reach it.
    plain = UvTools(str(recording_uv))
    assert (plain.ca_bundle, plain.index_url) == (None, None)
    assert "UV_DEFAULT_INDEX" not in plain.environment(index=True)
    plain.download([LINE], "3.11", tmp_path)
    args, _ = recorded(tmp_path)
    assert "--cert" not in args
    assert "--index-url" not in args

    monkeypatch.setenv("BEEPHOST_CONTROLLER_CA_BUNDLE", "/etc/beephost/ca.pem")
    monkeypatch.setenv("BEEPHOST_CONTROLLER_INDEX_URL", "https://mirror.test/simple")
    tools = UvTools(str(recording_uv))
    tools.download([LINE], "3.11", tmp_path)
    args, env = recorded(tmp_path)
    assert args[args.index("--cert") + 1] == "/etc/beephost/ca.pem"
    assert env["SSL_CERT_FILE"] == "/etc/beephost/ca.pem"
    assert args[args.index("--index-url") + 1] == "https://mirror.test/simple"
