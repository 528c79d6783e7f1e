"""The egress proxy image's pure half: what its key covers, its wheelhouse, its recipe.

The real build (offline, on Docker) is tests/e2e/test_egress_proxy_image.py.
"""

import dataclasses
import hashlib
import shutil
from pathlib import Path

import pytest

from beephost_controller.images.base_source import BaseImage
from beephost_controller.images.dockerfile import dockerfile_instructions
from beephost_controller.images.egress_proxy import (
    DOCKERFILE,
    PROXY_COMMAND,
    PROXY_MEMBERS,
    PROXY_USER,
    EgressProxyRecipe,
    ProxyPlan,
    install_script,
    plan_egress_proxy,
    proxy_modules,
)
from beephost_controller.images.egress_proxy_wheels import (
    PROXY_LOCK,
    proxy_wheels,
    render_proxy_requirements,
)
from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.inputs import BuildInputs
from beephost_controller.images.labels import (
    KIND_EGRESS_PROXY_IMAGE,
    LABEL_BUILD_KEY,
    LABEL_KIND,
    LABEL_MANAGED,
)
from beephost_controller.images.layout import find_workspace
from beephost_controller.images.lockfile import lock_requirements
from beephost_controller.ports import ImageInfo
from beephost_controller.testing.services import MemoryImageBuilder
from beephost_controller.testing.tools import (
    FakeWheelhouseTools,
    fake_sdist_bytes,
    fake_wheel_bytes,
)

ROOT = find_workspace(Path(__file__).parent)
BASE = BaseImage(
    tag="beephost/python:3.11",
    image_id="sha256:" + "b" * 64,
    python_version="3.11.2",
    source="debian",
    built=False,
)


def _workspace(tmp_path: Path) -> Path:
    """A copy of what the proxy's key reads: its directory and our three members."""
    target = tmp_path / "repo"
    shutil.copytree(ROOT / "egress-proxy", target / "egress-proxy")
    for member in PROXY_MEMBERS.values():
        shutil.copytree(
            ROOT / member,
            target / member,
            ignore=shutil.ignore_patterns("__pycache__", "tests"),
        )
    return target


def _plan(workspace: Path, **changes: object) -> ProxyPlan:
    inputs = BuildInputs(workspace=workspace, tools=FakeWheelhouseTools())
    return dataclasses.replace(plan_egress_proxy(BASE, inputs), **changes)  # type: ignore[arg-type]


def test_the_key_follows_the_modules_the_scripts_import() -> None:
    modules = proxy_modules(ROOT)
    controller = "services/controller/src/beephost_controller"
    for needed in (
        f"{controller}/__init__.py",
        f"{controller}/egress_proxy_config.py",
        f"{controller}/egress_rules.py",
        f"{controller}/egress.py",
        f"{controller}/schemas/__init__.py",
        f"{controller}/schemas/egress.py",
        "packages/core/src/beephost_core/__init__.py",
        "packages/core/src/beephost_core/stream_relay.py",
    ):
        assert needed in modules, needed
    # Not imported by the proxy: a change there keeps its image (and running proxy).
    for unrelated in (
        f"{controller}/images/builder.py",
        f"{controller}/app.py",
        "packages/core/src/beephost_core/executor.py",
    ):
        assert unrelated not in modules


def test_an_imported_module_changes_the_key_an_unrelated_one_does_not(
    tmp_path: Path,
) -> None:
    workspace = _workspace(tmp_path)
    key = _plan(workspace).key
    controller = workspace / "services/controller/src/beephost_controller"
    with (controller / "images" / "builder.py").open("a") as stream:
        stream.write("\n# unrelated\n")
    assert _plan(workspace).key == key
    with (controller / "egress_rules.py").open("a") as stream:
        stream.write("\n# a rule changed\n")
    assert _plan(workspace).key != key


@pytest.mark.parametrize(
    "change",
    [
        {"base_image_id": "sha256:" + "c" * 64},
        {"lock_text": "mitmproxy==12.0.0 --hash=sha256:" + "0" * 64 + "\n"},
        {"scripts": {"addon.py": "0", "serve.py": "1"}},
        {"installer": "pip (the base image's bundled wheel)"},
        {"extra_labels": {"io.beephost.test.run": "other"}},
    ],
)
def test_every_input_changes_the_key(tmp_path: Path, change: dict[str, object]) -> None:
    workspace = _workspace(tmp_path)
    assert _plan(workspace, **change).key != _plan(workspace).key


def test_a_script_change_changes_the_key(tmp_path: Path) -> None:
    workspace = _workspace(tmp_path)
    key = _plan(workspace).key
    with (workspace / "egress-proxy" / "serve.py").open("a") as stream:
        stream.write("\n# changed\n")
    assert _plan(workspace).key != key


def test_the_proxy_runs_on_the_bookworm_python_only(tmp_path: Path) -> None:
    inputs = BuildInputs(workspace=_workspace(tmp_path), tools=FakeWheelhouseTools())
    trixie = dataclasses.replace(BASE, python_version="3.13.5")
    with pytest.raises(BackendImageError, match=r"runs on CPython 3\.11"):
        plan_egress_proxy(trixie, inputs)


def test_the_dockerfile_builds_offline_and_runs_serve_as_a_non_root_user() -> None:
    assert not DOCKERFILE.lstrip().startswith("# syntax")
    instructions = dockerfile_instructions(DOCKERFILE)
    assert not any("--mount" in i.args for i in instructions if i.name == "RUN")
    final = [i for i in instructions if i.stage == 1]
    assert [i.args for i in final if i.name == "USER"] == [PROXY_USER]
    assert final[-1].name == "CMD"
    assert final[-1].args == '["' + '", "'.join(PROXY_COMMAND) + '"]'
    # The wheelhouse stays in the build stage.
    assert not any("/wheels" in i.args for i in final if i.name == "COPY")
    script = install_script()
    assert "--offline --no-index" in script
    assert "--require-hashes" in script
    assert "--no-deps -r /wheels/ours.txt" in script
    assert "--only-binary=:all:" in script


def test_the_recipe_knows_its_image_by_kind_and_key(tmp_path: Path) -> None:
    inputs = BuildInputs(
        workspace=_workspace(tmp_path),
        tools=FakeWheelhouseTools(),
        repository_prefix="beephost-test",
    )
    plan = plan_egress_proxy(BASE, inputs)
    recipe = EgressProxyRecipe(plan, BASE, inputs, FakeWheelhouseTools())
    assert recipe.tag == f"beephost-test/egress-proxy:3.11-{plan.key[:16]}"
    assert recipe.aliases == ("beephost-test/egress-proxy:3.11",)
    labels = {
        LABEL_MANAGED: "true",
        LABEL_KIND: KIND_EGRESS_PROXY_IMAGE,
        LABEL_BUILD_KEY: plan.key,
    }
    assert recipe.is_current(ImageInfo(id="sha256:x", tags=(), labels=labels))
    stale = {**labels, LABEL_BUILD_KEY: "0" * 64}
    assert not recipe.is_current(ImageInfo(id="sha256:x", tags=(), labels=stale))
    # Never an environment image: the disk's pruning lists those only.
    assert KIND_EGRESS_PROXY_IMAGE != "environment-image"


def _lock(*entries: tuple[str, str, list[str]]) -> str:
    lines = []
    for name, version, hashes in entries:
        lines.append(f"{name}=={version} \\")
        lines += [f"    --hash=sha256:{digest} \\" for digest in hashes[:-1]]
        lines.append(f"    --hash=sha256:{hashes[-1]}")
    return "\n".join(lines) + "\n"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_requirement_without_a_wheel_is_built_from_its_hashed_source(
    tmp_path: Path,
) -> None:
    lock = _lock(
        ("attrs", "26.1.0", [_sha(fake_wheel_bytes("attrs", "26.1.0", "3.11")), "a" * 64]),
        ("pyperclip", "1.9.0", [_sha(fake_sdist_bytes("pyperclip", "1.9.0"))]),
    )  # fmt: skip
    requirements = lock_requirements(lock)
    tools = FakeWheelhouseTools(unavailable=frozenset({"pyperclip"}))
    inputs = BuildInputs(workspace=ROOT, cache_dir=tmp_path / "cache", tools=tools)
    target = tmp_path / "wheels"
    built = proxy_wheels(requirements, inputs, tools, target)
    assert [wheel.name for wheel in built] == ["pyperclip"]
    assert tools.built == ["sdist:pyperclip"]
    assert sorted(path.name for path in target.iterdir()) == [
        "attrs-26.1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "pyperclip-1.9.0-py3-none-any.whl",
    ]
    text = render_proxy_requirements(requirements, built)
    assert f"pyperclip==1.9.0 --hash=sha256:{built[0].sha256}" in text
    assert _sha(fake_sdist_bytes("pyperclip", "1.9.0")) not in text
    assert "attrs==26.1.0" in text
    # Warm: nothing downloaded or built again.
    again = FakeWheelhouseTools(unavailable=frozenset({"pyperclip"}))
    shutil.rmtree(target)
    inputs = dataclasses.replace(inputs, tools=again)
    assert (
        proxy_wheels(requirements, inputs, again, target)[0].sha256 == built[0].sha256
    )
    assert again.built == []
    assert again.downloads == []


def test_a_source_whose_hash_is_not_locked_is_refused(tmp_path: Path) -> None:
    lock = _lock(("pyperclip", "1.9.0", ["f" * 64]))
    tools = FakeWheelhouseTools(unavailable=frozenset({"pyperclip"}))
    inputs = BuildInputs(workspace=ROOT, cache_dir=tmp_path / "cache", tools=tools)
    with pytest.raises(BackendImageError, match="hash mismatch"):
        proxy_wheels(lock_requirements(lock), inputs, tools, tmp_path / "wheels")


def test_the_real_lock_parses_with_its_source_only_entry() -> None:
    requirements = lock_requirements((ROOT / PROXY_LOCK).read_text())
    names = {r.name for r in requirements}
    assert {"mitmproxy", "pydantic", "prometheus-client", "publicsuffixlist"} <= names
    # pyperclip has its sdist only; the other single-hash ones, a wheel only.
    assert "pyperclip" in [r.name for r in requirements if len(r.hashes) == 1]


def test_imports_are_followed_relative_ones_too_type_checking_ones_not(
    tmp_path: Path,
) -> None:
    workspace = tmp_path / "repo"
    (workspace / "egress-proxy").mkdir(parents=True)
    (workspace / "egress-proxy" / "addon.py").write_text(
        "from beephost_controller import a\n"
    )
    (workspace / "egress-proxy" / "serve.py").write_text(
        "import json\nimport beephost_core.relay\n"
    )
    package = workspace / "services/controller/src/beephost_controller"
    (package / "sub").mkdir(parents=True)
    files = {
        package / "__init__.py": "",
        package / "a.py": (
            "from typing import TYPE_CHECKING\nfrom . import b\n"
            "if TYPE_CHECKING:\n    from beephost_controller import never\n"
        ),
        package / "b.py": "from .sub.c import name\n",
        package / "sub" / "__init__.py": "",
        package / "sub" / "c.py": "from .. import d\nname = 1\n",
        package / "d.py": "",
        package / "never.py": "",
        package / "unrelated.py": "",
    }
    core = workspace / "packages/core/src/beephost_core"
    core.mkdir(parents=True)
    files |= {core / "__init__.py": "", core / "relay.py": "import asyncio\n"}
    for path, text in files.items():
        path.write_text(text)
    found = {Path(name).name if "sub" not in name else "sub/" + Path(name).name
             for name in proxy_modules(workspace)}  # fmt: skip
    assert found == {
        "__init__.py", "a.py", "b.py", "sub/__init__.py", "sub/c.py", "d.py",
        "relay.py",
    }  # fmt: skip
    assert len(proxy_modules(workspace)) == 8  # both packages' __init__.py


def test_the_memory_builder_builds_the_proxy_image_once() -> None:
    builder = MemoryImageBuilder()
    lines: list[str] = []
    tag = builder.ensure_egress_proxy(lines.append)
    assert builder.ensure_egress_proxy(lines.append) == tag
    assert builder.builds == [tag]
    assert builder.environment_images() == []
