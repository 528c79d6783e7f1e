"""``ensure(recipe)``: find an image by its content key, or build it; one place for all.

Every image kind (base, backend, servers, environment) is a ``Recipe``: the tag it
is addressed by, the moving tags that follow it, whether an image found under the
tag is current, and how to build it. ``ensure`` owns the rest, the same for all:
a lookup, the build lock, the build, moving the aliases and retiring the image the
build replaced.
"""

import contextlib
import fcntl
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from beephost_controller.images.errors import ImageError
from beephost_controller.images.labels import (
    LABEL_IMAGE_OWNER,
    LABEL_KIND,
    LABEL_MANAGED,
    owned_by,
)
from beephost_controller.ports import ContainerEngine, ContainerEngineError, ImageInfo

logger = logging.getLogger(__name__)


class Recipe(Protocol):
    """One image to have: its address, how to recognise it, how to build it."""

    @property
    def what(self) -> str:
        """What the logs call it: "base image", "backend image"..."""
        ...

    @property
    def tag(self) -> str:
        """The tag that addresses it (content-addressed, or ``<repository>:<X.Y>``)."""
        ...

    @property
    def aliases(self) -> tuple[str, ...]:
        """Moving tags pointed at it, found or built (``<repository>:<X.Y>``...)."""
        ...

    @property
    def retires(self) -> str | None:
        """The tag whose previous image a build retires (``None``: none is)."""
        ...

    @property
    def kind(self) -> str:
        """Its ``io.beephost.kind``: only images of this kind are ever retired."""
        ...

    @property
    def repository(self) -> str:
        """Its repository: an image also tagged elsewhere is never retired."""
        ...

    @property
    def error(self) -> type[ImageError]:
        """What a build that does not give a current image raises."""
        ...

    def is_current(self, info: ImageInfo) -> bool:
        """Whether the image ``info`` found (or just built) under ``tag`` is this one."""
        ...

    def build(self, runtime: ContainerEngine) -> ImageInfo:
        """Build the image and tag it ``tag``; called under the lock."""
        ...


@dataclass(frozen=True)
class Ensured:
    """What ``ensure`` found or built."""

    info: ImageInfo
    built: bool
    seconds: float


def ensure(
    recipe: Recipe,
    runtime: ContainerEngine,
    *,
    lock: Path,
    refresh: bool = False,
    log: Callable[[str], None] = lambda _line: None,
) -> Ensured:
    """Find the image ``recipe`` describes, or build it, under the lock file ``lock``.

    A current image under ``recipe.tag`` is used as it is (its aliases moved back to it
    if they moved away); otherwise, or with ``refresh``, the recipe builds it, the
    aliases move to the new image and the image ``recipe.retires`` pointed at before is
    removed if it is ours and unused. ``log`` hears of a build before it starts (a
    job's log).

    Raises:
        ImageError: The build failed, or gave an image that is not current.
        ContainerEngineError: The engine failed otherwise.
    """
    started = time.monotonic()
    if not refresh:
        # Without the lock first: a hit must not wait for someone else's build.
        hit = _current(recipe, runtime)
        if hit is not None and _aliased(recipe, runtime, hit):
            return Ensured(hit, False, time.monotonic() - started)
    with locked(lock):
        existing = runtime.get_image(recipe.tag)
        if existing is not None and not refresh and recipe.is_current(existing):
            for alias in recipe.aliases:
                aliased = runtime.get_image(alias)
                if aliased is None or aliased.id != existing.id:
                    runtime.tag_image(existing.id, alias)
            logger.info("%s %s is present (%s)", recipe.what, recipe.tag, existing.id)
            return Ensured(existing, False, time.monotonic() - started)
        if existing is not None and not refresh:
            logger.info("%s %s is stale; rebuilding", recipe.what, recipe.tag)
        previous = runtime.get_image(recipe.retires) if recipe.retires else None
        log(f"building the {recipe.what} {recipe.tag}")
        info = recipe.build(runtime)
        if not recipe.is_current(info):
            raise recipe.error(f"{recipe.tag} was built without its build-key label")
        for alias in recipe.aliases:
            runtime.tag_image(info.id, alias)
        if previous is not None:
            retire(runtime, previous.id, info, recipe)
        seconds = time.monotonic() - started
        logger.info("built %s %s in %.1f s", recipe.what, recipe.tag, seconds)
        return Ensured(info, True, seconds)


def _current(recipe: Recipe, runtime: ContainerEngine) -> ImageInfo | None:
    found = runtime.get_image(recipe.tag)
    return found if found is not None and recipe.is_current(found) else None


def _aliased(recipe: Recipe, runtime: ContainerEngine, info: ImageInfo) -> bool:
    for alias in recipe.aliases:
        aliased = runtime.get_image(alias)
        if aliased is None or aliased.id != info.id:
            return False
    return True


def retire(
    runtime: ContainerEngine, previous_id: str, current: ImageInfo, recipe: Recipe
) -> None:
    """Remove the image a build replaced, if it is ours and nothing else needs it.

    Ours: managed, of the recipe's kind, built by the controller that built
    ``current`` (``io.beephost.image.owner``, none for a script), and tagged (if at all)
    in its repository only. The engine refuses while a container still uses it: then
    it stays.
    """
    if previous_id == current.id:
        return
    previous = runtime.get_image(previous_id)
    if (
        previous is None
        or not owned_by(previous.labels, current.labels.get(LABEL_IMAGE_OWNER))
        or previous.labels.get(LABEL_MANAGED) != "true"
        or previous.labels.get(LABEL_KIND) != recipe.kind
        or any(not tag.startswith(f"{recipe.repository}:") for tag in previous.tags)
    ):
        return
    try:
        for ref in previous.tags or (previous.id,):
            runtime.remove_image(ref)
    except ContainerEngineError as exc:
        logger.info("kept previous %s %s: %s", recipe.what, previous_id, exc)


_held = threading.local()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path``, re-entrant within a thread.

    Two builds (two controllers, a test and ``scripts/build-images``) share the wheel
    pool and the tags: the lock serialises them. An environment's recipe ensures its
    backend images inside its own build, under the same lock: the thread that holds it
    goes on (flock would block on a second open of the file, even in one process).
    """
    key = str(path.resolve())
    held: set[str] = getattr(_held, "paths", set())
    _held.paths = held
    if key in held:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
            fcntl.flock(handle, fcntl.LOCK_UN)
