"""The ``io.beephost.*`` labels every image of the pipeline carries, and their checks.

``io.beephost.kind`` says which recipe made an image (``KIND_*``): lookups, retiring and
test cleanup go by it, never by name.
"""

import re
from collections.abc import Mapping

from beephost_controller.images.errors import BaseImageError

LABEL_MANAGED = "io.beephost.managed"
#: The name of the controller (``settings.name``) that built an image or created a
#: container: it removes only its own, whatever else shares the engine. Never part of a
#: content key: a second controller finds and uses the first's image, and leaves it be.
LABEL_CONTROLLER = "io.beephost.controller"
LABEL_KIND = "io.beephost.kind"
LABEL_PYTHON_VERSION = "io.beephost.python.version"
LABEL_PYTHON_MINOR = "io.beephost.python.minor"
#: The content key (``keys.content_key``) an image was built for.
LABEL_BUILD_KEY = "io.beephost.build.key"
LABEL_CODE_VERSION = "io.beephost.code.version"
# Base images.
LABEL_ROOTFS_SHA256 = "io.beephost.rootfs.sha256"
#: ``RootfsPlan.packages_key``: a base image of another package list is stale.
LABEL_ROOTFS_PACKAGES = "io.beephost.rootfs.packages"
LABEL_DEBIAN_SUITE = "io.beephost.debian.suite"
LABEL_DEBIAN_VERSION = "io.beephost.debian.python-package-version"
LABEL_SOURCE = "io.beephost.base.source"
LABEL_BASE_REF = "io.beephost.base.ref"
LABEL_BASE_DIGEST = "io.beephost.base.digest"
# Backend (and controller) images.
LABEL_BACKEND = "io.beephost.backend"
LABEL_BASE_IMAGE = "io.beephost.base.image"
LABEL_INSTALLER = "io.beephost.installer"
# Environment images.
LABEL_ENVIRONMENT_LOCK = "io.beephost.environment.lock"
#: On admin images: the hash of the client SDK's source trees they carry.
LABEL_ENVIRONMENT_SDK = "io.beephost.environment.sdk"
#: On environment images: the id of the servers image they are one layer on.
LABEL_SERVERS_IMAGE = "io.beephost.servers.image"

KIND_BASE_IMAGE = "base-image"
KIND_PROBE = "base-image-probe"
KIND_BACKEND_IMAGE = "backend-image"
KIND_CONTROLLER_IMAGE = "controller-image"
#: The Dockerfiles' build stage labels itself so; its intermediate images (the legacy
#: builder keeps them as cache) are removed by build key after every build. The
#: controller's Dockerfile labels its build stage the same way.
KIND_BACKEND_BUILD = "backend-build"
KIND_SERVERS_IMAGE = "servers-image"
KIND_ENVIRONMENT_IMAGE = "environment-image"
#: On the container (and leftovers) of an environment image's install.
KIND_ENVIRONMENT_BUILD = "environment-build"
#: The egress proxy's image (images/egress_proxy.py), and its build stage's
#: intermediate images (removed by build key after every build).
KIND_EGRESS_PROXY_IMAGE = "egress-proxy-image"
KIND_EGRESS_PROXY_BUILD = "egress-proxy-build"


#: On an image (and the build container of an environment image): the controller
#: that built it, the only one that may remove it. A key of its own, not
#: LABEL_CONTROLLER: a container inherits its image's labels, and the controller
#: label on a container says which controller manages that container.
LABEL_IMAGE_OWNER = "io.beephost.image.owner"


def owner_labels(controller: str | None) -> dict[str, str]:
    """The owner label of what ``controller`` builds (none for a script or a test)."""
    return {LABEL_IMAGE_OWNER: controller} if controller is not None else {}


def owned_by(labels: Mapping[str, str], controller: str | None) -> bool:
    """Whether an image with ``labels`` is ``controller``'s to remove.

    Without a name (a script, a test), only what no controller owns is.
    """
    return labels.get(LABEL_IMAGE_OWNER) == controller


_LABEL_KEY_RE = re.compile(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$")


def check_label_keys(labels: Mapping[str, str]) -> None:
    """Reject extra labels that a ``LABEL`` change or a label filter would mangle.

    Raises:
        BaseImageError: A key is not lowercase and dotted, or a value has a line break.
    """
    for key, value in labels.items():
        if not _LABEL_KEY_RE.match(key):
            raise BaseImageError(f"invalid label key {key!r}")
        if "\n" in value or "\r" in value:
            raise BaseImageError(f"label {key} has a line break")


def quote_label_value(value: str) -> str:
    """``value`` as a double-quoted Dockerfile word that expands to exactly itself."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'
