"""``DockerImageBuilder``: the ``ImageBuilder`` port on the Docker engine."""

import dataclasses
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from beephost_controller.engine.docker_images import DockerEngine
from beephost_controller.images.base import ensure_base_image
from beephost_controller.images.base_source import BaseImage
from beephost_controller.images.egress_proxy import ensure_egress_proxy_image
from beephost_controller.images.egress_proxy_wheels import (
    PROXY_PYTHON,
    SourceWheelTool,
)
from beephost_controller.images.environment import (
    ensure_environment_image,
    sdk_code_version,
    workspace_code_version,
)
from beephost_controller.images.inputs import BuildInputs
from beephost_controller.images.keys import environment_code, environment_tag
from beephost_controller.images.labels import (
    KIND_ENVIRONMENT_IMAGE,
    LABEL_KIND,
    LABEL_MANAGED,
    owner_labels,
)
from beephost_controller.images.uv_tools import UvTools
from beephost_controller.images.wheelhouse import WheelhouseTools
from beephost_controller.ports import BaseImageRef, BuildLog, ContainerEngine, ImageInfo
from beephost_controller.resolver import Lock
from beephost_controller.settings import Settings


class _ExportOnce:
    """``WheelhouseTools`` whose ``uv export`` of a package runs once.

    The workspace is this process's code, read once (``code_version`` is kept too):
    the servers' code hash and each backend image's plan read the same exports, and
    every environment build needs them all.
    """

    def __init__(self, tools: WheelhouseTools) -> None:
        self._tools = tools
        self._exports: dict[tuple[Path, tuple[str, ...]], str] = {}
        self._lock = threading.Lock()

    def export(self, workspace: Path, package: str, *also: str) -> str:
        with self._lock:
            key = (workspace, (package, *also))
            if key not in self._exports:
                self._exports[key] = self._tools.export(workspace, package, *also)
            return self._exports[key]

    def build_wheel(self, workspace: Path, member: str, outdir: Path) -> Path:
        return self._tools.build_wheel(workspace, member, outdir)

    def download(self, lines: Sequence[str], python_minor: str, dest: Path) -> None:
        self._tools.download(lines, python_minor, dest)

    def installer(self) -> tuple[str, Path | None]:
        return self._tools.installer()


class DockerImageBuilder:
    """Base images through ensure_base_image, environment images through
    ensure_environment_image (which builds or finds the three backend images and the
    servers image made of them, then adds the environment's packages as one layer).

    Args:
        settings: The controller's settings.
        runtime: The container engine; a ``DockerEngine`` from the environment if
            omitted.
        inputs: What every build shares; ``BuildInputs.from_settings(settings)`` if
            omitted.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        runtime: ContainerEngine | None = None,
        inputs: BuildInputs | None = None,
    ) -> None:
        self._settings = settings
        self._runtime = runtime or DockerEngine.from_env()
        inputs = inputs or BuildInputs.from_settings(settings)
        # The proxy's one sdist (no wheel exists) is built with the same uv as the rest.
        self._source: SourceWheelTool | None = (
            inputs.tools if isinstance(inputs.tools, UvTools) else None
        )
        self._inputs = dataclasses.replace(inputs, tools=_ExportOnce(inputs.tools))
        self._code_version: str | None = None
        self._sdk_version: str | None = None
        self._lock = threading.Lock()

    @property
    def runtime(self) -> ContainerEngine:
        return self._runtime

    @property
    def code_version(self) -> str:
        """Hash of the three servers' source trees (stable for this process)."""
        with self._lock:
            if self._code_version is None:
                self._code_version = workspace_code_version(
                    self._inputs.workspace, self._inputs.tools
                )
            return self._code_version

    @property
    def sdk_version(self) -> str:
        """Hash of the client SDK's source trees, which admin images carry."""
        with self._lock:
            if self._sdk_version is None:
                self._sdk_version = sdk_code_version(self._inputs.workspace)
            return self._sdk_version

    def ensure_base(self, python: str, log: Callable[[str], None]) -> BaseImageRef:
        base = ensure_base_image(
            python,
            self._settings,
            runtime=self._runtime,
            extra_labels=owner_labels(self._inputs.controller),
        )
        log(f"base image {base.tag} ({'built' if base.built else 'cached'})")
        return BaseImageRef(
            python, base.tag, base.image_id, base.python_version, base.source
        )

    def environment_images(self) -> list[ImageInfo]:
        # Every controller's: disk.py lists what this one built or uses, and removes
        # only what it built (owned_by).
        return self._runtime.list_images(
            {
                **self._inputs.extra_labels,
                LABEL_MANAGED: "true",
                LABEL_KIND: KIND_ENVIRONMENT_IMAGE,
            }
        )

    def remove_environment_image(self, image: ImageInfo) -> None:
        # By tag, never forced: the last tag removed deletes the image, unless a
        # container still uses it (the engine refuses, and it stays).
        for ref in image.tags or (image.id,):
            self._runtime.remove_image(ref)

    def ensure_environment(
        self, *, base: BaseImageRef, lock: Lock, admin: bool, log: BuildLog
    ) -> str:
        # The address, once: the code and SDK hashes it is made of are the ones the
        # image carries (ensure_environment_image does not compute them again).
        code = self.code_version
        sdk = self.sdk_version if admin else None
        tag = environment_tag(
            self._settings.environment_repository,
            base.image_id,
            lock.digest,
            environment_code(code, admin=admin, sdk=sdk),
        )
        image = ensure_environment_image(
            base=BaseImage(
                tag=base.image,
                image_id=base.image_id,
                python_version=base.version,
                source="registry" if base.source == "registry" else "debian",
                built=False,
            ),
            lock_text=lock.text,
            lock_digest=lock.digest,
            tag=tag,
            runtime=self._runtime,
            inputs=self._inputs,
            code=code,
            sdk=sdk,
            log=log,
        )
        log(f"environment image {image.tag} ({image.image_id[:19]})")
        return tag

    def ensure_egress_proxy(self, log: Callable[[str], None]) -> str:
        base = self.ensure_base(PROXY_PYTHON, log)
        image = ensure_egress_proxy_image(
            BaseImage(
                tag=base.image,
                image_id=base.image_id,
                python_version=base.version,
                source="registry" if base.source == "registry" else "debian",
                built=False,
            ),
            self._runtime,
            self._inputs,
            self._source or UvTools(),
            log=log,
        )
        log(
            f"egress proxy image {image.tag} "
            f"({'built' if image.built else 'cached'}, {image.image_id[:19]})"
        )
        return image.tag
