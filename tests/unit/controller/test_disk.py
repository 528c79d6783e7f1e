"""Environment images given back: removed when no environment names them, never while a
build may still record one — pure logic with the in-memory builder and real SQLite."""

from pathlib import Path

import pytest

from beephost_controller.disk import image_uses, prune, release_image
from beephost_controller.ports import ImageInfo, ImageNotFoundError
from beephost_controller.rows import EnvironmentRow, JobRow
from beephost_controller.store import SqliteStore
from beephost_controller.testing import MemoryImageBuilder
from beephost_protocol.errors import Conflict


def _store(tmp_path: Path, **images: str) -> SqliteStore:
    store = SqliteStore(tmp_path / "db")
    for name, image in images.items():
        store.insert_environment(
            EnvironmentRow(
                name, "3.11", [], False, False, "ready", lock="", image=image
            )
        )
    return store


def test_an_image_is_released_only_by_its_last_environment(tmp_path: Path) -> None:
    builder = MemoryImageBuilder()
    builder.images.update({"env:shared", "env:other"})
    store = _store(tmp_path, a="env:shared", b="env:shared")
    assert {
        u.image.tags: u.environments for u in image_uses(store, builder, "default")
    } == {
        ("env:other",): (),
        ("env:shared",): ("a", "b"),
    }
    store.delete_environment("a")
    assert release_image(store, builder, "env:shared", "default") is False
    assert "env:shared" in builder.images
    store.delete_environment("b")
    assert release_image(store, builder, "env:shared", "default") is True
    assert builder.images == {"env:other"}
    assert release_image(store, builder, "env:missing", "default") is False


def test_an_image_gone_meanwhile_counts_as_removed(tmp_path: Path) -> None:
    class Vanishing(MemoryImageBuilder):
        def remove_environment_image(self, image: ImageInfo) -> None:
            raise ImageNotFoundError(f"remove {image.tags[0]}: no such image")

    builder = Vanishing()
    builder.images.add("env:gone")
    assert [i.tags for i in prune(_store(tmp_path), builder, "default")] == [
        ("env:gone",)
    ]


def test_prune_waits_for_running_jobs(tmp_path: Path) -> None:
    builder = MemoryImageBuilder()
    builder.images.add("env:unused")
    store = _store(tmp_path)
    store.insert_job(JobRow("j-1", "build", "x", "running"))
    with pytest.raises(Conflict, match="queued or running"):
        prune(store, builder, "default")
    assert builder.images == {"env:unused"}
