"""Two controllers on one engine: each lists, prunes and retires only the images it
built (``io.beephost.controller``), and uses the other's by content key without ever
removing it. The fake engine, real SQLite."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from beephost_controller.disk import image_uses, prune, release_image
from beephost_controller.images.builder import DockerImageBuilder
from beephost_controller.images.ensure import retire
from beephost_controller.images.environment import (
    ensure_environment_image,
    workspace_code_version,
)
from beephost_controller.images.labels import (
    KIND_BASE_IMAGE,
    LABEL_IMAGE_OWNER,
    LABEL_KIND,
    LABEL_MANAGED,
)
from beephost_controller.resolver import Lock
from beephost_controller.rows import EnvironmentRow
from beephost_controller.settings import Settings
from beephost_controller.store import SqliteStore
from tests.unit.controller.conftest import ImageRig
from tests.unit.controller.test_environment_images import LOCK, OTHER_LOCK


def _controller(rig: ImageRig, name: str) -> DockerImageBuilder:
    """A controller named ``name`` with the default (empty) LABELS, on the rig's engine."""
    return DockerImageBuilder(
        Settings(name=name, database=rig.cache / f"{name}.db"),
        runtime=rig.engine,
        inputs=rig.inputs(controller=name),
    )


def _environment(
    rig: ImageRig, controller: str, store: SqliteStore, name: str, tag: str, lock: str
) -> None:
    """What ``build_environment`` does: ensure the image, then record it."""
    image = ensure_environment_image(
        base=rig.base,
        lock_text=lock,
        lock_digest=Lock(lock).digest,
        tag=tag,
        runtime=rig.engine,
        inputs=rig.inputs(controller=controller),
        code=workspace_code_version(rig.workspace, rig.tools),
        log=lambda _line: None,
    )
    store.insert_environment(
        EnvironmentRow(name, "3.11", [], False, False, "ready", lock=lock, image=tag)
    )
    assert image.tag == tag


@dataclass
class Two:
    """Two controllers with default LABELS on one fake engine, each with its store."""

    first: DockerImageBuilder
    store_1: SqliteStore
    second: DockerImageBuilder
    store_2: SqliteStore


@pytest.fixture
def two(rig: ImageRig, tmp_path: Path) -> Iterator[Two]:
    stores = SqliteStore(tmp_path / "1.db"), SqliteStore(tmp_path / "2.db")
    yield Two(
        _controller(rig, "compose"), stores[0], _controller(rig, "default"), stores[1]
    )
    for store in stores:
        store.close()


def test_a_controller_lists_and_prunes_only_the_images_it_built(
    rig: ImageRig, two: Two
) -> None:
    first, store_1, second, store_2 = two.first, two.store_1, two.second, two.store_2
    _environment(rig, "compose", store_1, "data", "beephost/env:data", LOCK)
    _environment(rig, "compose", store_1, "spare", "beephost/env:spare", OTHER_LOCK)
    store_1.delete_environment("spare")  # unused, but the first's to remove
    assert rig.engine.get_image("beephost/env:data") is not None
    built = rig.engine.get_image("beephost/env:spare")
    assert built is not None
    assert built.labels[LABEL_IMAGE_OWNER] == "compose"
    # Its install container too: a restart of the first removes its leftovers only.
    build_labels = rig.engine.commit_runs[-1].spec.labels
    assert build_labels[LABEL_IMAGE_OWNER] == "compose"

    assert image_uses(store_2, second, "default") == []
    assert prune(store_2, second, "default") == []
    assert release_image(store_2, second, "beephost/env:spare", "default") is False
    assert rig.engine.get_image("beephost/env:data") is not None
    assert rig.engine.get_image("beephost/env:spare") is not None

    # The first still prunes its own.
    assert [i.tags for i in prune(store_1, first, "compose")] == [
        ("beephost/env:spare",)
    ]
    assert rig.engine.get_image("beephost/env:data") is not None


def test_an_image_found_by_content_key_is_used_never_removed(
    rig: ImageRig, two: Two
) -> None:
    first, store_1, second, store_2 = two.first, two.store_1, two.second, two.store_2
    _environment(rig, "compose", store_1, "data", "beephost/env:same", LOCK)
    commits = len(rig.engine.commit_runs)
    # The second controller wants the same content: it finds the image, builds nothing.
    _environment(rig, "default", store_2, "copy", "beephost/env:same", LOCK)
    assert len(rig.engine.commit_runs) == commits
    # Its environment goes; the image stays: it was not the second's to remove.
    store_2.delete_environment("copy")
    assert release_image(store_2, second, "beephost/env:same", "default") is False
    assert prune(store_2, second, "default") == []
    assert rig.engine.get_image("beephost/env:same") is not None
    assert [u.environments for u in image_uses(store_1, first, "compose")] == [
        ("data",)
    ]


def test_a_build_retires_only_its_own_controllers_image(rig: ImageRig) -> None:
    runtime = rig.engine

    def image(tag: str, owner: str | None) -> str:
        labels = {LABEL_MANAGED: "true", LABEL_KIND: KIND_BASE_IMAGE}
        if owner is not None:
            labels[LABEL_IMAGE_OWNER] = owner
        return runtime.build_labelled_image(rig.base.image_id, tag, labels).id

    class Recipe:
        what, kind, repository = "base image", KIND_BASE_IMAGE, "beephost/python"

    theirs, ours = (
        image("beephost/python:a", "compose"),
        image("beephost/python:b", "default"),
    )
    current = runtime.get_image(image("beephost/python:c", "default"))
    assert current is not None
    retire(runtime, theirs, current, Recipe())  # type: ignore[arg-type]
    retire(runtime, ours, current, Recipe())  # type: ignore[arg-type]
    assert runtime.get_image(theirs) is not None
    assert runtime.get_image(ours) is None
