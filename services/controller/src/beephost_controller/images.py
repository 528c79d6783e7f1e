"""DockerImageBuilder: base and environment images on the Docker engine (in progress)."""

from collections.abc import Callable

from beephost_controller.jobs import JobLog
from beephost_controller.resolver import Lock
from beephost_controller.runtime.base_images import ensure_base_image
from beephost_controller.runtime.docker import DockerRuntime
from beephost_controller.service import BaseImageRef
from beephost_controller.settings import Settings
from beephost_protocol.errors import Unavailable


class DockerImageBuilder:
    """Base images through ensure_base_image; environment images are the next step."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._runtime = DockerRuntime.from_env()

    @property
    def code_version(self) -> str:
        return "unbuilt"

    def ensure_base(self, python: str, log: Callable[[str], None]) -> BaseImageRef:
        base = ensure_base_image(python, self._settings, runtime=self._runtime)
        log(f"base image {base.tag} ({'built' if base.built else 'cached'})")
        return BaseImageRef(
            python, base.tag, base.image_id, base.python_version, base.source
        )

    def image_exists(self, tag: str) -> bool:
        return self._runtime.get_image(tag) is not None

    def build_environment(
        self, *, base: BaseImageRef, lock: Lock, tag: str, admin: bool, log: JobLog
    ) -> None:
        raise Unavailable("environment image builds are not wired to Docker yet")
