"""A ControllerService on the real engine, building only into test repositories."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from beephost_controller.images.builder import DockerImageBuilder
from beephost_controller.jobs import JobLog, JobRunner
from beephost_controller.resolver import resolve
from beephost_controller.service import ControllerService
from beephost_controller.settings import Settings
from beephost_controller.store import SqliteStore
from tests.e2e.session_fixtures import BACKENDS_REPOSITORY, BuiltBackends


class RecordingLog(JobLog):
    """A job log that keeps its lines, for assertions."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str) -> None:
        self.lines.append(text)


@contextmanager
def environment_service(
    backend_images: BuiltBackends, workdir: Path, environment_repository: str
) -> Iterator[ControllerService]:
    """The service with the session's base and backend images and labels.

    ``environment_repository`` is the caller's own: environment images other modules
    built for equal locks must not turn its builds into cache hits.
    """
    settings = Settings.model_validate(
        {
            "database": workdir / "controller.db",
            "environment_repository": f"{BACKENDS_REPOSITORY}/{environment_repository}",
            "base_image_repository": f"{BACKENDS_REPOSITORY}/python",
            "base_image_registry": "",
            "base_image_digests": {},
            "pythons": ["3.11"],
            "default_python": "3.11",
            "workspace": backend_images.workspace,
        }
    )
    builder = DockerImageBuilder(
        settings, runtime=backend_images.engine, inputs=backend_images.inputs()
    )
    store = SqliteStore(settings.database)
    runner = JobRunner(store, 1)
    try:
        yield ControllerService(
            settings, store, runner, builder, lambda reqs, py: resolve(reqs, py)
        )
    finally:
        runner.shutdown()
        store.close()


def module_environment_service(
    name: str, workdir_prefix: str, environment_repository: str
) -> Callable[..., Iterator[ControllerService]]:
    """A module-scoped fixture ``name``: an :func:`environment_service` in a fresh
    ``workdir_prefix`` directory, for a module to assign to that name."""

    @pytest.fixture(scope="module", name=name)
    def service(
        backend_images: BuiltBackends, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[ControllerService]:
        """A ControllerService on the real engine, in test repositories only."""
        workdir = tmp_path_factory.mktemp(workdir_prefix)
        with environment_service(
            backend_images, workdir, environment_repository
        ) as running:
            yield running

    return service
