"""Pinned-CPython base images: imported from a Debian rootfs, or pulled by digest.

By default the image is a Debian root filesystem (``rootfs``) imported as one layer;
with ``BEEPHOST_CONTROLLER_BASE_IMAGE_REGISTRY`` set, the official ``python:X.Y-slim``
image is pulled instead, always by digest, never by tag. Either way it is tagged
``<repository>:<X.Y>``, carries ``io.beephost.*`` labels and runs its ``python3`` once
to be verified; a later call finds it by tag (``ensure``) and does nothing.

Example:
    >>> image = ensure_base_image("3.11", Settings())
    >>> image.tag, image.python_version
    ('beephost/python:3.11', '3.11.2')
"""

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from beephost_controller.images.base_source import (
    BaseImage,
    base_image_from_labels,
    base_image_tag,
    debian_labels,
    import_changes,
    is_current,
    python_minor,
    registry_labels,
    registry_reference,
    select_source,
)
from beephost_controller.images.ensure import ensure
from beephost_controller.images.errors import BaseImageError
from beephost_controller.images.keys import sha256_file
from beephost_controller.images.labels import (
    KIND_BASE_IMAGE,
    KIND_PROBE,
    LABEL_KIND,
    LABEL_MANAGED,
    check_label_keys,
)
from beephost_controller.images.rootfs import (
    REQUIRED_ROOTFS_FILES,
    MmdebstrapBuilder,
    RootfsBuilder,
    RootfsPlan,
    debian_suite,
    ensure_rootfs,
    python_version_from_status,
    read_rootfs,
    rootfs_plan,
)
from beephost_controller.ports import ContainerEngine, ContainerEngineError, ImageInfo
from beephost_controller.settings import Settings
from beephost_controller.specs import RunSpec

logger = logging.getLogger(__name__)

VERSION_PROBE = "import platform; print(platform.python_version())"


def _probe_version(
    runtime: ContainerEngine, image: str, extra_labels: Mapping[str, str]
) -> str:
    labels = {**extra_labels, LABEL_MANAGED: "true", LABEL_KIND: KIND_PROBE}
    try:
        output = runtime.run(
            RunSpec(image, ["python3", "-c", VERSION_PROBE], labels=labels)
        )
    except ContainerEngineError as exc:
        raise BaseImageError(f"python3 does not run in {image}: {exc}") from exc
    return output.strip()


@dataclass
class BaseRecipe:
    """``ensure``'s recipe of a base image: from a Debian rootfs, or pulled."""

    minor: str
    settings: Settings
    builder: RootfsBuilder
    extra: Mapping[str, str]
    refresh: bool
    what = "base image"
    kind = KIND_BASE_IMAGE
    aliases: tuple[str, ...] = ()
    error = BaseImageError

    def __post_init__(self) -> None:
        self.repository = self.settings.base_image_repository
        self.tag = base_image_tag(self.repository, self.minor)
        self.retires: str | None = self.tag
        self.source = select_source(self.settings)
        self.suite = debian_suite(self.minor) if self.source == "debian" else None
        self.digest = (
            registry_reference(self.settings, self.minor).digest
            if self.source == "registry"
            else None
        )
        self.rootfs = (
            rootfs_plan(self.minor, self.settings.debian_mirror)
            if self.source == "debian"
            else None
        )

    def is_current(self, info: ImageInfo) -> bool:
        return is_current(
            info,
            source=self.source,
            suite=self.suite,
            packages_key=self.rootfs.packages_key if self.rootfs else None,
            digest=self.digest,
        )

    def build(self, runtime: ContainerEngine) -> ImageInfo:
        if self.rootfs is not None:
            return self._from_debian(runtime, self.rootfs)
        return self._from_registry(runtime)

    def _from_debian(self, runtime: ContainerEngine, plan: RootfsPlan) -> ImageInfo:
        artifact = ensure_rootfs(
            plan,
            self.settings.rootfs_cache_dir,
            self.builder,
            refresh=self.refresh,
        )
        status, members = read_rootfs(artifact)
        missing = [path for path in REQUIRED_ROOTFS_FILES if path not in members]
        if missing:
            raise BaseImageError(f"{artifact} lacks {', '.join(missing)}")
        python_version, package_version = python_version_from_status(status, self.minor)
        labels = debian_labels(
            minor=self.minor,
            python_version=python_version,
            package_version=package_version,
            suite=plan.suite,
            rootfs_sha256=sha256_file(artifact),
            packages_key=plan.packages_key,
            extra=self.extra,
        )
        info = runtime.import_image(artifact, self.tag, changes=import_changes(labels))
        try:
            running = _probe_version(runtime, info.id, self.extra)
            if running != python_version:
                raise BaseImageError(
                    f"{self.tag}: dpkg says CPython {python_version}, "
                    f"the interpreter says {running!r}"
                )
        except BaseImageError:
            # Do not leave a broken image under the tag for the next call to trust.
            with contextlib.suppress(ContainerEngineError):
                runtime.remove_image(info.id, force=True)
            raise
        return info

    def _from_registry(self, runtime: ContainerEngine) -> ImageInfo:
        reference = registry_reference(self.settings, self.minor)
        had_reference = runtime.get_image(reference.pull_ref) is not None
        logger.info("pulling %s", reference.display)
        try:
            pulled = runtime.pull_image(reference.repository, reference.digest)
        except ContainerEngineError as exc:
            raise BaseImageError(f"cannot pull {reference.display}: {exc}") from exc
        try:
            running = _probe_version(runtime, pulled.id, self.extra)
            if not running.startswith(f"{self.minor}."):
                raise BaseImageError(
                    f"{reference.display} runs CPython {running!r}, not {self.minor}.x"
                )
            # A pulled image cannot get labels without a build: FROM it, add labels.
            labels = registry_labels(
                reference=reference, python_version=running, extra=self.extra
            )
            return runtime.build_labelled_image(pulled.id, self.tag, labels)
        finally:
            if not had_reference:
                # Our own pull reference; the layers stay as the parent of our image.
                with contextlib.suppress(ContainerEngineError):
                    runtime.remove_image(reference.pull_ref)


def ensure_base_image(
    python: str,
    settings: Settings,
    *,
    runtime: ContainerEngine | None = None,
    builder: RootfsBuilder | None = None,
    extra_labels: Mapping[str, str] | None = None,
    refresh: bool = False,
) -> BaseImage:
    """Make sure the pinned-CPython base image for ``python`` exists locally.

    A current image under ``<repository>:<X.Y>`` is returned as is (``built=False``).
    Otherwise, with no registry configured, the rootfs tarball is taken from the cache
    directory or built with mmdebstrap, checked, imported and verified by running its
    ``python3``; with a registry, ``python:X.Y-slim`` is pulled by digest, verified and
    relabelled.

    Args:
        python: CPython minor version, ``"3.11"``.
        settings: Repository, registry, digests, cache directory and mirror.
        runtime: The container engine; a ``DockerEngine`` from the environment if
            omitted.
        builder: Rootfs builder; ``MmdebstrapBuilder()`` if omitted.
        extra_labels: More labels for the image and probe containers (tests use one
            to find and remove what they created).
        refresh: Rebuild (or re-pull) even if a current image or tarball exists.

    Returns:
        The image, with the exact CPython version it runs.

    Raises:
        BaseImageError: Unsupported version, missing digest, failed build, pull or
            verification.
        ContainerEngineError: The engine failed otherwise.

    Example:
        >>> ensure_base_image("3.13", settings).python_version
        '3.13.5'
    """
    extra = dict(extra_labels or {})
    check_label_keys(extra)
    recipe = BaseRecipe(
        python_minor(python), settings, builder or MmdebstrapBuilder(), extra, refresh
    )
    owns_runtime = runtime is None
    if runtime is None:
        # Imported here: unit tests and the fake never load docker-py.
        from beephost_controller.engine.docker_images import DockerEngine

        runtime = DockerEngine.from_env()
    lock_name = f"{recipe.repository.replace('/', '_')}-{recipe.minor}"
    try:
        found = ensure(
            recipe,
            runtime,
            lock=settings.rootfs_cache_dir / f".{lock_name}.lock",
            refresh=refresh,
        )
    finally:
        if owns_runtime:
            close = getattr(runtime, "close", None)
            if callable(close):
                close()
    rootfs_path = (
        settings.rootfs_cache_dir / recipe.rootfs.artifact_name
        if recipe.rootfs is not None
        else None
    )
    return base_image_from_labels(
        recipe.tag, found.info, built=found.built, rootfs_path=rootfs_path
    )
