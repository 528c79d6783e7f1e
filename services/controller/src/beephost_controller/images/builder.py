"""``DockerImageBuilder``: the ``ImageBuilder`` port on the Docker engine."""

import threading
from collections.abc import Callable

from beephost_controller.images.base import ensure_base_image
from beephost_controller.images.base_source import BaseImage
from beephost_controller.images.environment import (
    ensure_environment_image,
    sdk_code_version,
    workspace_code_version,
)
from beephost_controller.images.inputs import BuildInputs
from beephost_controller.images.labels import (
    KIND_ENVIRONMENT_IMAGE,
    LABEL_KIND,
    LABEL_MANAGED,
    owner_labels,
)
from beephost_controller.jobs import JobLog
from beephost_controller.ports import BaseImageRef, ContainerRuntime, ImageInfo
from beephost_controller.resolver import Lock
from beephost_controller.runtime.docker_images import DockerRuntime
from beephost_controller.settings import Settings


class DockerImageBuilder:
    """Base images through ensure_base_image, environment images through
    ensure_environment_image (which builds or finds the three backend images and the
    servers image made of them, then adds the environment's packages as one layer).

    Args:
        settings: The controller's settings.
        runtime: The container engine; a ``DockerRuntime`` from the environment if
            omitted.
        inputs: What every build shares; ``BuildInputs.from_settings(settings)`` if
            omitted.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        runtime: ContainerRuntime | None = None,
        inputs: BuildInputs | None = None,
    ) -> None:
        self._settings = settings
        self._runtime = runtime or DockerRuntime.from_env()
        self._inputs = inputs or BuildInputs.from_settings(settings)
        self._code_version: str | None = None
        self._sdk_version: str | None = None
        self._lock = threading.Lock()

    @property
    def runtime(self) -> ContainerRuntime:
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

    def image_exists(self, tag: str) -> bool:
        return self._runtime.get_image(tag) is not None

    def environment_images(self) -> list[ImageInfo]:
        return self._runtime.list_images(
            {
                # Its own only: another controller's images on the engine are not
                # this one's to list or remove, even those it uses (found by tag).
                **self._inputs.image_labels,
                LABEL_MANAGED: "true",
                LABEL_KIND: KIND_ENVIRONMENT_IMAGE,
            }
        )

    def remove_environment_image(self, image: ImageInfo) -> None:
        # By tag, never forced: the last tag removed deletes the image, unless a
        # container still uses it (the engine refuses, and it stays).
        for ref in image.tags or (image.id,):
            self._runtime.remove_image(ref)

    def build_environment(
        self, *, base: BaseImageRef, lock: Lock, tag: str, admin: bool, log: JobLog
    ) -> None:
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
            sdk=admin,
            log=log,
        )
        log(f"environment image {image.tag} ({image.image_id[:19]})")
