"""``scratch_build``: the scratch directory and the engine's leftovers go, whatever
happens in the build; an engine failure becomes the images' error, naming the tag."""

import logging
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.scratch import scratch_build
from beephost_controller.ports import ContainerEngineError
from beephost_controller.testing.engine import FakeEngine

LEFTOVER = {"io.beephost.kind": "backend-build", "io.beephost.build-key": "k1"}
KEPT = {"io.beephost.kind": "backend-build", "io.beephost.build-key": "k2"}
TAG = "beephost/pipe-backend:3.11-k1"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    folder = tmp_path / "cache"
    folder.mkdir()
    return folder


@pytest.fixture
def engine(tmp_path: Path) -> FakeEngine:
    fake = FakeEngine()
    tarball = tmp_path / "base.tar"
    tarball.write_bytes(b"rootfs")
    fake.import_image(tarball, "base:1")
    fake.build_labelled_image("base:1", "stage:k1", LEFTOVER)
    fake.build_labelled_image("base:1", "stage:k2", KEPT)
    return fake


def _scratch(engine: FakeEngine, cache: Path) -> AbstractContextManager[Path]:
    return scratch_build(
        engine, tag=TAG, cache_dir=cache, prefix="context-pipe-", leftovers=LEFTOVER
    )


def test_a_build_gets_a_fresh_directory_that_goes_with_the_leftovers(
    engine: FakeEngine, cache: Path
) -> None:
    with _scratch(engine, cache) as scratch:
        assert scratch.parent == cache
        assert scratch.name.startswith("context-pipe-")
        (scratch / "Dockerfile").write_text("FROM base:1\n")
    assert list(cache.iterdir()) == []
    assert engine.list_images(LEFTOVER) == []
    # Only this key's leftovers: another build's stage stays.
    assert len(engine.list_images(KEPT)) == 1


def test_an_engine_failure_names_the_tag_and_still_tidies_up(
    engine: FakeEngine, cache: Path
) -> None:
    with (
        pytest.raises(BackendImageError, match=rf"building {TAG} failed: disk full"),
        _scratch(engine, cache),
    ):
        raise ContainerEngineError("disk full")
    assert list(cache.iterdir()) == []
    assert engine.list_images(LEFTOVER) == []


def test_other_errors_pass_through_unchanged(engine: FakeEngine, cache: Path) -> None:
    with pytest.raises(KeyError), _scratch(engine, cache):
        raise KeyError("wheel")
    assert list(cache.iterdir()) == []
    assert engine.list_images(LEFTOVER) == []


def test_a_failed_tidy_up_is_logged_not_raised(
    engine: FakeEngine,
    cache: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    def refuse(labels: object) -> list[str]:
        raise ContainerEngineError("engine is gone")

    monkeypatch.setattr(engine, "remove_by_labels", refuse)
    with caplog.at_level(logging.WARNING), _scratch(engine, cache) as scratch:
        built = scratch / "built"
        built.write_text("ok")
    assert list(cache.iterdir()) == []
    assert f"could not remove what building {TAG} left: engine is gone" in caplog.text
