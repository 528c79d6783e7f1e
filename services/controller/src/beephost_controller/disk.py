"""Disk used by environment images, and giving it back.

An environment image is shared by every environment with the same content (base,
lock, server code), so it is removed only when no environment names it: when the
last one is deleted, or by a prune. The runtimes' base, backend and servers images are
not touched: every environment of a runtime stands on them.
"""

import logging
from dataclasses import dataclass

from beephost_controller import ports
from beephost_controller.images.labels import owned_by
from beephost_controller.store import SqliteStore
from beephost_protocol.errors import Conflict

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageUse:
    """An environment image and the environments built into it."""

    image: ports.ImageInfo
    environments: tuple[str, ...]
    #: Whether this controller built it: only then may it remove it.
    owned: bool = True


def image_uses(
    store: SqliteStore, builder: ports.ImageBuilder, owner: str | None
) -> list[ImageUse]:
    """Every environment image this controller (named ``owner``) built or uses, with
    who uses it. Another controller's image is listed while an environment of this
    one names it (found by its content key), and never removed by this one."""
    named: dict[str, list[str]] = {}
    for row in store.environments():
        if row.image is not None:
            named.setdefault(row.image, []).append(row.name)
    uses = []
    for image in builder.environment_images():
        users = tuple(sorted(n for tag in image.tags for n in named.get(tag, ())))
        owned = owned_by(image.labels, owner)
        if owned or users:
            uses.append(ImageUse(image, users, owned))
    return uses


def release_image(
    store: SqliteStore, builder: ports.ImageBuilder, tag: str, owner: str | None
) -> bool:
    """Remove the image ``tag`` if it is ``owner``'s and no environment names it any
    more.

    Returns:
        Whether it was removed (a container still using it keeps it: logged).
    """
    for use in image_uses(store, builder, owner):
        if tag in use.image.tags:
            unused = use.owned and not use.environments
            return unused and _remove(builder, use.image)
    return False


def prune(
    store: SqliteStore, builder: ports.ImageBuilder, owner: str | None
) -> list[ports.ImageInfo]:
    """Remove every image ``owner`` built that no environment names; the ones removed.

    Raises:
        Conflict: A build is queued or running (its image may not be recorded yet).
    """
    if store.jobs(("queued", "running")):
        raise Conflict("a job is queued or running: prune once it has finished")
    removed = []
    for use in image_uses(store, builder, owner):
        if use.owned and not use.environments and _remove(builder, use.image):
            removed.append(use.image)
    return removed


def _remove(builder: ports.ImageBuilder, image: ports.ImageInfo) -> bool:
    try:
        builder.remove_environment_image(image)
    except ports.ImageNotFoundError:
        return True  # gone meanwhile: what was asked for
    except ports.ContainerEngineError as exc:
        logger.warning("kept image %s: %s", ", ".join(image.tags) or image.id, exc)
        return False
    logger.info(
        "removed image %s (%d bytes)", ", ".join(image.tags) or image.id, image.size
    )
    return True
