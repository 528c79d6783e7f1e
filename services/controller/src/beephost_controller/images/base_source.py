"""Where a base image comes from (a Debian suite, or a registry digest) and what its
labels say: the pure half of ``base``."""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from beephost_controller.images.errors import BaseImageError
from beephost_controller.images.labels import (
    KIND_BASE_IMAGE,
    LABEL_BASE_DIGEST,
    LABEL_BASE_REF,
    LABEL_DEBIAN_SUITE,
    LABEL_DEBIAN_VERSION,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_PYTHON_MINOR,
    LABEL_PYTHON_VERSION,
    LABEL_ROOTFS_PACKAGES,
    LABEL_ROOTFS_SHA256,
    LABEL_SOURCE,
)
from beephost_controller.ports import ImageInfo
from beephost_controller.settings import Settings

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


def _labels(
    source: Source, minor: str, python_version: str, extra: Mapping[str, str] | None
) -> dict[str, str]:
    """What every base image's labels say, whatever its source."""
    return {
        **(extra or {}),
        LABEL_MANAGED: "true",
        LABEL_KIND: KIND_BASE_IMAGE,
        LABEL_SOURCE: source,
        LABEL_PYTHON_MINOR: minor,
        LABEL_PYTHON_VERSION: python_version,
    }


def debian_labels(
    *,
    minor: str,
    python_version: str,
    package_version: str,
    suite: str,
    rootfs_sha256: str,
    packages_key: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The labels of a base image built from Debian packages."""
    return {
        **_labels("debian", minor, python_version, extra),
        LABEL_DEBIAN_VERSION: package_version,
        LABEL_DEBIAN_SUITE: suite,
        LABEL_ROOTFS_SHA256: rootfs_sha256,
        LABEL_ROOTFS_PACKAGES: packages_key,
    }


def registry_labels(
    *,
    reference: RegistryReference,
    python_version: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The labels of a base image pulled by digest."""
    return {
        **_labels("registry", reference.python_minor, python_version, extra),
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
    packages_key: str | None = None,
    digest: str | None = None,
) -> bool:
    """Whether an existing image is the one these settings would produce.

    An image of the other source, suite, package list or digest (the settings or
    the recipe changed) is stale.
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
        return (
            labels.get(LABEL_DEBIAN_SUITE) == suite
            and labels.get(LABEL_ROOTFS_PACKAGES) == packages_key
        )
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
