"""``FakeImages``: the fake engine's images and tags, and what inspects and removes them.

``FakeEngine`` (runtime.py) adds what makes images: imports, pulls, builds, commits.
"""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from beephost_controller.ports import (
    ContainerEngineError,
    ImageInfo,
    ImageNotFoundError,
)


@dataclass
class FakeImage:
    """One image the fake engine holds."""

    id: str
    labels: dict[str, str]
    size: int
    python_version: str | None
    parent: str | None = None
    repo_digests: list[str] = field(default_factory=list)


class FakeImages:
    """The images of a fake engine, by id, and its tags.

    ``operations`` records every call that changed state (``("tag", tag)``...), so a
    test can assert that a cache hit did no work; ``lookups`` every reference
    ``get_image`` was asked for, so that it can count how often one image is sought.
    """

    def __init__(self) -> None:
        self.operations: list[tuple[str, str]] = []
        self.lookups: list[str] = []
        self._images: dict[str, FakeImage] = {}
        self._tags: dict[str, str] = {}
        self._counter = 0

    # -- helpers -----------------------------------------------------------------

    def _new_id(self, seed: str) -> str:
        self._counter += 1
        return (
            "sha256:" + hashlib.sha256(f"{self._counter}:{seed}".encode()).hexdigest()
        )

    def _resolve(self, ref: str) -> FakeImage | None:
        if ref in self._images:
            return self._images[ref]
        if ref in self._tags:
            return self._images[self._tags[ref]]
        if ":" not in ref.rsplit("/", 1)[-1] and f"{ref}:latest" in self._tags:
            return self._images[self._tags[f"{ref}:latest"]]
        for image in self._images.values():
            if ref in image.repo_digests:
                return image
        return None

    def _info(self, image: FakeImage) -> ImageInfo:
        tags = tuple(sorted(tag for tag, iid in self._tags.items() if iid == image.id))
        return ImageInfo(
            id=image.id,
            tags=tags,
            labels=dict(image.labels),
            size=image.size,
            repo_digests=tuple(image.repo_digests),
        )

    def _add(self, image: FakeImage, tag: str) -> None:
        self._images[image.id] = image
        self._tags[tag] = image.id

    def get_image(self, ref: str) -> ImageInfo | None:
        """Inspect a local image; ``None`` if there is none by that reference."""
        self.lookups.append(ref)
        image = self._resolve(ref)
        return None if image is None else self._info(image)

    def tag_image(self, ref: str, tag: str) -> None:
        """Point ``tag`` at the image ``ref``.

        Raises:
            ImageNotFoundError: ``ref`` does not exist.
        """
        image = self._resolve(ref)
        if image is None:
            raise ImageNotFoundError(f"tag {ref}: no such image")
        self._tags[tag] = image.id
        self.operations.append(("tag", tag))

    def remove_image(self, ref: str, *, force: bool = False) -> None:
        """Untag ``ref`` if it is one of several references, else delete the image.

        Raises:
            ImageNotFoundError: No such image.
            ContainerEngineError: The image has children, or several tags and no force.
        """
        image = self._resolve(ref)
        if image is None:
            raise ImageNotFoundError(f"remove {ref}: no such image")
        tags = [tag for tag, iid in self._tags.items() if iid == image.id]
        references = len(tags) + len(image.repo_digests)
        has_children = any(other.parent == image.id for other in self._images.values())
        if ref != image.id:
            # By reference, like `docker rmi repo:tag`: untag, and delete the image
            # only if that was its last reference and nothing is built on it.
            self._tags.pop(ref, None)
            if ref in image.repo_digests:
                image.repo_digests.remove(ref)
            if references == 1 and not has_children:
                del self._images[image.id]
        else:
            if has_children:
                raise ContainerEngineError(
                    f"remove {ref}: image has dependent children"
                )
            if references > 1 and not force:
                raise ContainerEngineError(f"remove {ref}: image is referenced by tags")
            for tag in tags:
                del self._tags[tag]
            del self._images[image.id]
        self.operations.append(("remove", ref))

    def list_images(self, labels: Mapping[str, str]) -> list[ImageInfo]:
        """Every image carrying all of ``labels``."""
        return [
            self._info(image)
            for image in self._images.values()
            if all(image.labels.get(key) == value for key, value in labels.items())
        ]

    def remove_by_labels(self, labels: Mapping[str, str]) -> list[str]:
        """Delete every image carrying all of ``labels``, children first.

        Raises:
            ValueError: ``labels`` is empty.
        """
        if not labels:
            raise ValueError("refusing to remove by an empty label selector")
        matching = [
            image
            for image in self._images.values()
            if all(image.labels.get(key) == value for key, value in labels.items())
        ]
        # Children were created after their parents: remove newest first.
        matching.sort(key=lambda image: image.parent is None)
        removed = []
        for image in matching:
            for tag in [tag for tag, iid in self._tags.items() if iid == image.id]:
                del self._tags[tag]
            del self._images[image.id]
            removed.append(image.id)
        self.operations.append(("remove-by-labels", json.dumps(dict(labels))))
        return removed
