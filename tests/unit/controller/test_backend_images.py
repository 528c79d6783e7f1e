"""Backend-image logic on FakeEngine and FakeWheelhouseTools: no engine, uv or network."""

import dataclasses
import importlib
from pathlib import Path

import pytest
from scripts.controller_image import (
    export_wheelhouse,
)

from beephost_controller.images import backend_plan
from beephost_controller.images.backend_plan import BuildPlan, ContextSources, build_key
from beephost_controller.images.dockerfile import (
    check_dockerfile,
    dockerfile_instructions,
    parse_label_args,
    substitute,
)
from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.inputs import BuildInputs
from beephost_controller.images.keys import (
    alias_tag,
    image_tag,
    python_minor_of,
    source_tree_hash,
)
from beephost_controller.images.labels import (
    KIND_BACKEND_BUILD,
    KIND_BACKEND_IMAGE,
    LABEL_BACKEND,
    LABEL_BUILD_KEY,
    LABEL_CODE_VERSION,
    LABEL_KIND,
    LABEL_PYTHON_VERSION,
)
from beephost_controller.images.layout import (
    CONTAINER_PORTS,
    METRICS_PORTS,
    backend_dockerfile_args,
    dockerfile_path,
    wheelhouse_path,
)
from beephost_controller.images.lockfile import (
    BuiltWheel,
    parse_export,
    render_requirements,
)
from beephost_controller.images.uv_tools import UvTools
from beephost_controller.ports import ImageNotFoundError
from beephost_controller.schemas import BACKEND_TYPES, BackendType
from beephost_controller.specs import ImageBuildSpec
from beephost_controller.testing import FakeWheelhouseTools
from tests.unit.controller.conftest import REPO, ImageRig, context_misses

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
        "install_script": "",
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
        {"install_script": "set -eu\n"},
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


@pytest.mark.parametrize("kind", BACKEND_TYPES)
def test_the_real_dockerfile_builds_each_kind_offline_as_non_root(
    kind: BackendType,
) -> None:
    text = (REPO / dockerfile_path(kind)).read_text()
    assert check_dockerfile(text) == []
    args = backend_dockerfile_args(kind)
    instructions = dockerfile_instructions(text)
    runs = [substitute(i.args, args) for i in instructions if i.name == "RUN"]
    assert any(
        f'sh /wheels/install-server.sh "beephost_{kind}_backend.__main__"' in run
        and f'ln -s "beephost-{kind}-backend" /opt/beephost/bin/beephost-backend' in run
        for run in runs
    )
    final = [i for i in instructions if i.stage == 1]
    assert [i.args for i in final if i.name == "USER"] == ["10001:10001"]
    healthcheck = next(i.args for i in final if i.name == "HEALTHCHECK")
    assert '["/opt/beephost/bin/beephost-backend", "healthcheck"]' in healthcheck
    env = substitute(" ".join(i.args for i in final if i.name == "ENV"), args).split()
    assert f"BEEPHOST_{kind.upper()}_BACKEND_PYTHON=/usr/bin/python3" in env
    listen = "SOCKET_PATH=/run/beephost/pipe.sock" if kind == "pipe" else "HOST=0.0.0.0"
    assert f"BEEPHOST_{kind.upper()}_BACKEND_{listen}" in env
    assert "/opt/beephost/bin" not in " ".join(env)  # workers must find bare python3
    exposed = [substitute(i.args, args) for i in final if i.name == "EXPOSE"]
    assert exposed == [{"pipe": "9464", "http": "5678", "rpc": "50051 9465"}[kind]]


@pytest.mark.parametrize("kind", BACKEND_TYPES)
def test_the_images_ports_are_the_servers_defaults(kind: BackendType) -> None:
    # The Dockerfile leaves ports to the servers' defaults; the controller publishes
    # layout's ports: the two must agree.
    settings = importlib.import_module(f"beephost_{kind}_backend.settings").Settings
    fields = settings.model_fields
    if CONTAINER_PORTS[kind] is not None:
        assert fields["port"].default == CONTAINER_PORTS[kind]
    if METRICS_PORTS[kind] is not None:
        assert fields["metrics_port"].default == METRICS_PORTS[kind]
    assert ("metrics_port" in fields) == (METRICS_PORTS[kind] is not None)


def test_the_kinds_dockerfile_arguments_are_part_of_its_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = plan(kind="http").key
    moved = {**backend_dockerfile_args("http"), "LISTEN_VALUE": "127.0.0.1"}
    monkeypatch.setattr(backend_plan, "backend_dockerfile_args", lambda kind: moved)
    assert plan(kind="http").key != before


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
        (
            "FROM a AS b\nRUN pip install x\nFROM a\nUSER 1\nHEALTHCHECK NONE\n",
            "/wheels/install-server.sh",
        ),
    ],
    ids=[
        "syntax",
        "mount",
        "one-stage",
        "root",
        "no-user",
        "no-health",
        "wheels",
        "no-install-script",
    ],
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


@pytest.mark.parametrize("kind", BACKEND_TYPES)
def test_build_labels_tags_and_leaves_no_build_stage(
    rig: ImageRig, kind: str, tmp_path: Path
) -> None:
    image = rig.backend(kind)
    assert image.built is True
    assert image.tag == f"beephost-test/{kind}-backend:3.11-{image.build_key[:16]}"
    assert image.alias == f"beephost-test/{kind}-backend:3.11"
    assert image.python_version == "3.11.2"
    info = rig.engine.get_image(image.alias)
    assert info is not None
    assert info.id == image.image_id
    assert info.labels[LABEL_KIND] == KIND_BACKEND_IMAGE
    assert info.labels[LABEL_BACKEND] == kind
    assert info.labels[LABEL_PYTHON_VERSION] == rig.base.python_version
    assert info.labels[LABEL_CODE_VERSION] == image.code_version
    assert info.labels[LABEL_BUILD_KEY] == image.build_key
    assert info.labels["org.opencontainers.image.title"] == f"beephost-{kind}-backend"
    # The fake keeps the build stage as the legacy builder does; it must be gone.
    assert rig.engine.remove_by_labels({LABEL_KIND: KIND_BACKEND_BUILD}) == []
    assert sorted(rig.tools.built) == [
        "packages/core",
        "packages/protocol",
        f"services/{kind}-backend",
    ]
    assert not list((tmp_path / "cache").glob("context-*"))  # contexts are transient


def test_second_call_is_a_cache_hit_that_does_no_work(rig: ImageRig) -> None:
    first = rig.backend("pipe")
    operations, built, downloads = (
        list(rig.engine.operations),
        list(rig.tools.built),
        list(rig.tools.downloads),
    )
    second = rig.backend("pipe")
    assert second.built is False
    assert (second.tag, second.image_id) == (first.tag, first.image_id)
    assert rig.engine.operations == operations
    assert (rig.tools.built, rig.tools.downloads) == (built, downloads)


def test_alias_moved_away_is_put_back_on_a_hit(rig: ImageRig) -> None:
    first = rig.backend("pipe")
    rig.engine.tag_image(rig.base.image_id, first.alias)
    again = rig.backend("pipe")
    assert again.built is False
    alias = rig.engine.get_image(first.alias)
    assert alias is not None
    assert alias.id == first.image_id


def test_source_change_rebuilds_reuses_the_wheel_pool_and_retires_the_old_image(
    rig: ImageRig,
) -> None:
    first = rig.backend("pipe")
    assert len(rig.tools.downloads) == 1
    (rig.workspace / "packages/core/src/beephost_core/__init__.py").write_text(
        "x = 1\n"
    )
    second = rig.backend("pipe")
    assert second.built is True
    assert second.tag != first.tag
    assert second.code_version != first.code_version
    assert len(rig.tools.downloads) == 1  # third-party wheels came from the pool
    assert rig.engine.get_image(first.image_id) is None
    alias = rig.engine.get_image(second.alias)
    assert alias is not None
    assert alias.id == second.image_id


def test_a_new_base_image_changes_the_tag(rig: ImageRig) -> None:
    first = rig.backend("rpc")
    info = rig.engine.build_labelled_image(
        rig.base.image_id, rig.base.tag, {"x.y": "z"}
    )
    rebased = dataclasses.replace(rig.base, image_id=info.id)
    second = dataclasses.replace(rig, base=rebased).backend("rpc")
    assert second.built is True
    assert second.tag != first.tag
    assert second.base_image_id == info.id


def test_extra_labels_reach_the_image_and_bad_keys_are_refused(rig: ImageRig) -> None:
    labels = {"io.beephost.test.run": "unit-1"}
    image = rig.backend("http", extra_labels=labels)
    info = rig.engine.get_image(image.tag)
    assert info is not None
    assert info.labels["io.beephost.test.run"] == "unit-1"
    assert rig.engine.remove_by_labels(labels) == [image.image_id]
    with pytest.raises(Exception, match="invalid label key"):
        rig.backend(
            "http",
            extra_labels={"Bad Key": "x"},
        )


def test_missing_base_and_unknown_kind_fail_before_any_work(rig: ImageRig) -> None:
    with pytest.raises(BackendImageError, match="unknown backend"):
        rig.backend("ftp")
    rig.engine.remove_image(rig.base.image_id, force=True)
    with pytest.raises(BackendImageError, match="is gone"):
        rig.backend("pipe")
    assert rig.tools.exports == []


def test_marked_requirement_without_a_wheel_is_skipped_unmarked_one_fails(
    rig: ImageRig,
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
    image = dataclasses.replace(rig, tools=marked).backend("pipe")
    assert image.built is True
    assert len(marked.downloads) == 2  # the required batch, then the marked one alone
    assert "sys_platform" not in marked.downloads[1][0]  # pip would judge the host

    missing = FakeWheelhouseTools(unavailable=frozenset({"pydantic-core"}))
    with pytest.raises(BackendImageError, match="pydantic-core"):
        dataclasses.replace(rig, tools=missing).backend("http")
    assert rig.engine.get_image("beephost-test/http-backend:3.11") is None


def test_exported_wheelhouse_is_hash_locked_with_the_uv_binary(
    rig: ImageRig, tmp_path: Path
) -> None:
    uv = tmp_path / "uv-binary"
    uv.write_bytes(b"\x7fELF fake")
    tools = FakeWheelhouseTools(uv_binary=uv)
    wheelhouse = export_wheelhouse(
        "pipe",
        rig.base,
        BuildInputs(workspace=rig.workspace, cache_dir=tmp_path / "cache", tools=tools),
    )
    assert wheelhouse == rig.workspace / "build/wheelhouse/pipe-backend"
    assert (wheelhouse / "python-minor").read_text() == "3.11\n"
    assert (wheelhouse / "uv").read_bytes() == uv.read_bytes()
    # The install steps the Dockerfiles run come with the wheelhouse, so a manual
    # `docker build` from the repository root finds them in /wheels too.
    assert (wheelhouse / "install-server.sh").read_text() == (
        rig.workspace / "services/install-server.sh"
    ).read_text()
    lines = [
        line
        for line in (wheelhouse / "requirements.txt").read_text().splitlines()
        if not line.startswith("#")
    ]
    assert len(lines) == 6  # three pins and our three wheels
    assert all("--hash=sha256:" in line for line in lines)
    assert len(list(wheelhouse.glob("*.whl"))) == 6


def test_backend_keys_are_unchanged_by_the_controller_kind() -> None:
    # The key scheme, pinned: a change moves every backend tag (a rebuild of each), so
    # it is made on purpose (last: the kind's Dockerfile arguments joined the key).
    assert build_key(plan()) == (
        "668da9c08a8d221a57637d6acea0c6c6e7f9b58a214b1d4b627f8a279b7565ab"
    )
    assert plan(sources=None).key == plan().key
    controller = plan(kind="controller", sources=ContextSources((), "s" * 64))
    assert controller.key not in (plan().key, plan(kind="controller").key)
    assert (
        controller.key
        != plan(kind="controller", sources=ContextSources((), "t" * 64)).key
    )


@pytest.mark.parametrize("kind", BACKEND_TYPES)
def test_the_context_has_everything_the_dockerfile_copies(
    rig: ImageRig, kind: BackendType
) -> None:
    rig.backend(kind)
    build = rig.engine.builds[-1]
    dockerfile = (REPO / dockerfile_path(kind)).read_text()
    assert context_misses(build, dockerfile) == []
    # Without the wheelhouse the Dockerfile's COPY has nothing to copy.
    bare = dataclasses.replace(build, files=frozenset({dockerfile_path(kind)}))
    assert context_misses(bare, dockerfile) == [f"{wheelhouse_path(kind)}/"]


def test_fake_build_needs_its_base_image_locally(rig: ImageRig) -> None:
    with pytest.raises(ImageNotFoundError):
        rig.engine.build_image(
            ImageBuildSpec(
                rig.workspace,
                dockerfile=dockerfile_path("pipe"),
                tag="beephost-test/pipe-backend:x",
                buildargs={"BASE_IMAGE": "beephost-test/python:2.7"},
            )
        )


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
