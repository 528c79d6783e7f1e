"""The image pipeline's fixtures: a small uv workspace, FakeEngine, a base image, fake
uv, and ``rig``, which builds backend and environment images on all of them."""

import shlex
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from beephost_controller.images.backend import BackendImage, ensure_backend_image
from beephost_controller.images.base_source import BaseImage
from beephost_controller.images.dockerfile import dockerfile_instructions, substitute
from beephost_controller.images.environment import (
    EnvironmentImage,
    ensure_environment_image,
    sdk_code_version,
    workspace_code_version,
)
from beephost_controller.images.inputs import BuildInputs
from beephost_controller.images.layout import INSTALL_SCRIPT, dockerfile_path
from beephost_controller.resolver import Lock
from beephost_controller.schemas import BACKEND_TYPES
from beephost_controller.testing import FakeEngine, FakeWheelhouseTools, ImageBuild

REPO = Path(__file__).resolve().parents[3]
#: The labels of every image the environment tests build.
RUN_LABELS = {"io.beephost.test.run": "unit"}


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
    """A small uv workspace: the servers' members, the client, the real Dockerfiles,
    their install script and .dockerignore."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[tool.uv.workspace]\nmembers = ["packages/*", "services/*"]\n'
    )
    shutil.copy(REPO / ".dockerignore", root / ".dockerignore")
    write_member(root, "packages/core", "beephost-core")
    write_member(root, "packages/protocol", "beephost-protocol")
    write_member(root, "packages/client", "beephost-client")
    for kind in BACKEND_TYPES:
        write_member(root, f"services/{kind}-backend", f"beephost-{kind}-backend")
        shutil.copy(REPO / dockerfile_path(kind), root / dockerfile_path(kind))
    shutil.copy(REPO / INSTALL_SCRIPT, root / INSTALL_SCRIPT)
    return root


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def base(engine: FakeEngine, tmp_path: Path) -> BaseImage:
    tarball = tmp_path / "rootfs.tar.gz"
    tarball.write_bytes(b"rootfs")
    info = engine.import_image(
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


@dataclass
class ImageRig:
    """Everything an image build needs, on fakes, with the cache in ``cache``."""

    engine: FakeEngine
    base: BaseImage
    workspace: Path
    tools: FakeWheelhouseTools
    cache: Path

    def inputs(
        self,
        *,
        prefix: str | None = "beephost-test",
        extra_labels: Mapping[str, str] | None = None,
        controller: str | None = None,
    ) -> BuildInputs:
        """The rig's workspace, cache and tools, with images under ``prefix``."""
        return BuildInputs(
            workspace=self.workspace,
            cache_dir=self.cache,
            tools=self.tools,
            extra_labels=extra_labels or {},
            repository_prefix=prefix,
            controller=controller,
        )

    def backend(
        self, kind: str, *, extra_labels: Mapping[str, str] | None = None
    ) -> BackendImage:
        """``ensure_backend_image`` into ``beephost-test/<kind>-backend``."""
        return ensure_backend_image(
            kind, self.base, self.engine, self.inputs(extra_labels=extra_labels)
        )

    def environment(
        self,
        *,
        tag: str,
        lock: str,
        sdk: bool = False,
        prefix: str | None = "beephost-test",
        log: Callable[[str], None] = lambda _line: None,
    ) -> EnvironmentImage:
        """``ensure_environment_image`` with ``RUN_LABELS``, backends under ``prefix``."""
        return ensure_environment_image(
            base=self.base,
            lock_text=lock,
            lock_digest=Lock(lock).digest,
            tag=tag,
            runtime=self.engine,
            inputs=self.inputs(prefix=prefix, extra_labels=RUN_LABELS),
            code=workspace_code_version(self.workspace, self.tools),
            sdk=sdk_code_version(self.workspace) if sdk else None,
            log=log,
        )


@pytest.fixture
def rig(
    engine: FakeEngine,
    base: BaseImage,
    workspace: Path,
    tools: FakeWheelhouseTools,
    tmp_path: Path,
) -> ImageRig:
    return ImageRig(engine, base, workspace, tools, tmp_path / "cache")


def context_misses(build: ImageBuild, dockerfile: str) -> list[str]:
    """What ``dockerfile``'s ``COPY`` instructions read and the build's context lacked
    (FakeEngine records the context, it does not read the Dockerfile)."""
    missing = []
    for instruction in dockerfile_instructions(dockerfile):
        words = shlex.split(substitute(instruction.args, build.spec.buildargs))
        if instruction.name != "COPY" or any(w.startswith("--from") for w in words):
            continue
        for source in [w for w in words if not w.startswith("--")][:-1]:
            path = source.rstrip("/")
            if path not in build.files and not any(
                name.startswith(f"{path}/") for name in build.files
            ):
                missing.append(source)
    return missing
