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
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from beephost_controller.images.ensure import ensure
from beephost_controller.images.errors import BaseImageError
from beephost_controller.images.keys import sha256_file
from beephost_controller.images.labels import (
    KIND_BASE_IMAGE,
    KIND_PROBE,
    LABEL_BASE_DIGEST,
    LABEL_BASE_REF,
    LABEL_DEBIAN_SUITE,
    LABEL_DEBIAN_VERSION,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_PYTHON_MINOR,
    LABEL_PYTHON_VERSION,
    LABEL_ROOTFS_SHA256,
    LABEL_SOURCE,
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
from beephost_controller.ports import ContainerRuntime, ContainerRuntimeError, ImageInfo
from beephost_controller.settings import Settings

logger = logging.getLogger(__name__)

Source = Literal["debian", "registry"]

#: Multi-arch index digests of docker.io/library/python:X.Y-slim, as pinned in public
#: Dockerfiles in 2026. They could not be checked from the build machines (no registry
#: is reachable there); a mirror of Docker Hub serves the same digests. Override per
#: version with BEEPHOST_CONTROLLER_BASE_IMAGE_DIGESTS, which any other registry needs.
OFFICIAL_SLIM_DIGESTS: Mapping[str, str] = {
    "3.11": "sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7",
    "3.13": "sha256:7c61056e61ac89e852de05f3dc6fa51a6dd2181797bceed46aa725dd7cb2cd3b",
    "3.14": "sha256:ce40764625a4ff50df3548277632e7f96c4e77fe75fa848aae9885476e7df5a4",
}

IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

VERSION_PROBE = "import platform; print(platform.python_version())"

_MINOR_RE = re.compile(r"^3\.(\d{1,2})$")


@dataclass(frozen=True)
class BaseImage:
    """A local pinned-CPython base image.

    Attributes:
        tag: ``<repository>:<X.Y>``, the name the controller builds on.
        image_id: The engine's image id (``sha256:...``).
        python_version: Exact CPython version, as ``platform.python_version()`` says.
        source: ``"debian"`` (mmdebstrap rootfs) or ``"registry"`` (pulled by digest).
        built: Whether this call did any work; ``False`` on a cache hit.
        rootfs_sha256: sha256 of the rootfs tarball (Debian source only).
        rootfs_path: The tarball in the cache directory, if it is there.
        debian_suite: Suite the packages came from (Debian source only).
        digest: Manifest digest that was pulled (registry source only).
        size: Image size in bytes, as the engine reports it.
    """

    tag: str
    image_id: str
    python_version: str
    source: Source
    built: bool
    rootfs_sha256: str | None = None
    rootfs_path: Path | None = None
    debian_suite: str | None = None
    digest: str | None = None
    size: int = 0


@dataclass(frozen=True)
class RegistryReference:
    """An image to pull: ``repository@digest``, described as ``repository:X.Y-slim@digest``."""

    repository: str
    digest: str
    python_minor: str

    @property
    def pull_ref(self) -> str:
        return f"{self.repository}@{self.digest}"

    @property
    def display(self) -> str:
        return f"{self.repository}:{self.python_minor}-slim@{self.digest}"


def python_minor(python: str) -> str:
    """Validate a CPython minor version such as ``"3.11"``.

    Args:
        python: ``X.Y``; patch versions are not accepted (they are an output).

    Returns:
        The same string.

    Raises:
        BaseImageError: It is not a ``3.Y`` version.
    """
    if not _MINOR_RE.match(python):
        raise BaseImageError(
            f"expected a CPython minor version like 3.11, got {python!r}"
        )
    return python


def base_image_tag(repository: str, minor: str) -> str:
    """The local tag of the base image for ``minor``: ``<repository>:<X.Y>``."""
    return f"{repository}:{minor}"


def select_source(settings: Settings) -> Source:
    """Registry if one is configured, else Debian: the one switch between the two paths."""
    return "registry" if settings.base_image_registry else "debian"


def registry_reference(settings: Settings, minor: str) -> RegistryReference:
    """The digest-pinned reference to pull for ``minor`` in registry mode.

    The per-version setting wins over the built-in table; there is no tag fallback.

    Raises:
        BaseImageError: No registry is configured, or no digest is known for ``minor``.
    """
    if not settings.base_image_registry:
        raise BaseImageError(
            "registry mode needs BEEPHOST_CONTROLLER_BASE_IMAGE_REGISTRY"
        )
    digest = settings.base_image_digests.get(minor) or OFFICIAL_SLIM_DIGESTS.get(minor)
    if digest is None:
        raise BaseImageError(
            f"no digest pinned for python:{minor}-slim; set "
            f'BEEPHOST_CONTROLLER_BASE_IMAGE_DIGESTS=\'{{"{minor}": "sha256:..."}}\' '
            "(a floating tag is never pulled)"
        )
    return RegistryReference(
        repository=f"{settings.base_image_registry}/python",
        digest=digest,
        python_minor=minor,
    )


def debian_labels(
    *,
    minor: str,
    python_version: str,
    package_version: str,
    suite: str,
    rootfs_sha256: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The labels of a base image built from Debian packages."""
    return {
        **(extra or {}),
        LABEL_MANAGED: "true",
        LABEL_KIND: KIND_BASE_IMAGE,
        LABEL_SOURCE: "debian",
        LABEL_PYTHON_MINOR: minor,
        LABEL_PYTHON_VERSION: python_version,
        LABEL_DEBIAN_VERSION: package_version,
        LABEL_DEBIAN_SUITE: suite,
        LABEL_ROOTFS_SHA256: rootfs_sha256,
    }


def registry_labels(
    *,
    reference: RegistryReference,
    python_version: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The labels of a base image pulled by digest."""
    return {
        **(extra or {}),
        LABEL_MANAGED: "true",
        LABEL_KIND: KIND_BASE_IMAGE,
        LABEL_SOURCE: "registry",
        LABEL_PYTHON_MINOR: reference.python_minor,
        LABEL_PYTHON_VERSION: python_version,
        LABEL_BASE_REF: reference.display,
        LABEL_BASE_DIGEST: reference.digest,
    }


def import_changes(labels: Mapping[str, str]) -> list[str]:
    """``docker import --change`` instructions: labels, PATH, locale and ``CMD``."""
    changes = [
        f"LABEL {key}={json.dumps(value)}" for key, value in sorted(labels.items())
    ]
    changes += [
        f"ENV PATH={IMAGE_PATH}",
        "ENV LANG=C.UTF-8",
        'CMD ["python3"]',
    ]
    return changes


def is_current(
    info: ImageInfo,
    *,
    source: Source,
    suite: str | None = None,
    digest: str | None = None,
) -> bool:
    """Whether an existing image is the one these settings would produce.

    An image of the other source, suite or digest (the settings changed) is stale.
    """
    labels = info.labels
    if (
        labels.get(LABEL_MANAGED) != "true"
        or labels.get(LABEL_KIND) != KIND_BASE_IMAGE
        or labels.get(LABEL_SOURCE) != source
        or not labels.get(LABEL_PYTHON_VERSION)
    ):
        return False
    if source == "debian":
        return labels.get(LABEL_DEBIAN_SUITE) == suite
    return labels.get(LABEL_BASE_DIGEST) == digest


def base_image_from_labels(
    tag: str, info: ImageInfo, *, built: bool, rootfs_path: Path | None = None
) -> BaseImage:
    """Describe an image from its labels (the cache-hit path)."""
    labels = info.labels
    source: Source = "registry" if labels.get(LABEL_SOURCE) == "registry" else "debian"
    return BaseImage(
        tag=tag,
        image_id=info.id,
        python_version=labels[LABEL_PYTHON_VERSION],
        source=source,
        built=built,
        rootfs_sha256=labels.get(LABEL_ROOTFS_SHA256),
        rootfs_path=rootfs_path if rootfs_path and rootfs_path.is_file() else None,
        debian_suite=labels.get(LABEL_DEBIAN_SUITE),
        digest=labels.get(LABEL_BASE_DIGEST),
        size=info.size,
    )


# -- building ------------------------------------------------------------------------


def _probe_version(
    runtime: ContainerRuntime, image: str, extra_labels: Mapping[str, str]
) -> str:
    labels = {**extra_labels, LABEL_MANAGED: "true", LABEL_KIND: KIND_PROBE}
    try:
        output = runtime.run(image, ["python3", "-c", VERSION_PROBE], labels=labels)
    except ContainerRuntimeError as exc:
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
            info, source=self.source, suite=self.suite, digest=self.digest
        )

    def build(self, runtime: ContainerRuntime) -> ImageInfo:
        if self.rootfs is not None:
            return self._from_debian(runtime, self.rootfs)
        return self._from_registry(runtime)

    def _from_debian(self, runtime: ContainerRuntime, plan: RootfsPlan) -> ImageInfo:
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
            with contextlib.suppress(ContainerRuntimeError):
                runtime.remove_image(info.id, force=True)
            raise
        return info

    def _from_registry(self, runtime: ContainerRuntime) -> ImageInfo:
        reference = registry_reference(self.settings, self.minor)
        had_reference = runtime.get_image(reference.pull_ref) is not None
        logger.info("pulling %s", reference.display)
        try:
            pulled = runtime.pull_image(reference.repository, reference.digest)
        except ContainerRuntimeError as exc:
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
                with contextlib.suppress(ContainerRuntimeError):
                    runtime.remove_image(reference.pull_ref)


def ensure_base_image(
    python: str,
    settings: Settings,
    *,
    runtime: ContainerRuntime | None = None,
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
        runtime: The container engine; a ``DockerRuntime`` from the environment if
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
        ContainerRuntimeError: The engine failed otherwise.

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
        from beephost_controller.runtime.docker import DockerRuntime

        runtime = DockerRuntime.from_env()
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
