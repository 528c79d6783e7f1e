"""Environment images on the real engine: the three servers plus the env's packages.

Builds on the session's test backend images (tests/e2e/conftest.py), in test
repositories, labelled with the session's run label: cleanup is by that label only.
"""

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from beephost_controller.images import DockerImageBuilder
from beephost_controller.jobs import JobLog, JobRunner
from beephost_controller.resolver import resolve
from beephost_controller.runtime.docker import DockerRuntime
from beephost_controller.runtime.environment_images import (
    ENV_PYTHON,
    KIND_ENVIRONMENT_IMAGE,
    LABEL_ENVIRONMENT_LOCK,
    server_command,
)
from beephost_controller.service import ControllerService
from beephost_controller.settings import Settings
from beephost_controller.store import EnvironmentRow, SqliteStore
from tests.e2e.conftest import BACKENDS_REPOSITORY, BuiltBackends
from tests.e2e.containers import (
    docker,
    inspect,
    label_args,
    pipe_exec,
    remove_container,
    socket_directory,
)

pytestmark = pytest.mark.docker


class _Log(JobLog):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str) -> None:
        self.lines.append(text)


@pytest.fixture(scope="module")
def env_service(
    backend_images: BuiltBackends,
    docker_client: DockerRuntime,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ControllerService]:
    """A ControllerService on the real engine, in test repositories only."""
    tmp = tmp_path_factory.mktemp("ctl")
    settings = Settings.model_validate(
        {
            "database": tmp / "controller.db",
            "environment_repository": f"{BACKENDS_REPOSITORY}/env",
            "base_image_repository": f"{BACKENDS_REPOSITORY}/python",
            "base_image_registry": "",
            "base_image_digests": {},
            "pythons": ["3.11"],
            "default_python": "3.11",
            "workspace": backend_images.workspace,
        }
    )
    builder = DockerImageBuilder(
        settings,
        runtime=docker_client,
        workspace=backend_images.workspace,
        cache_dir=backend_images.cache_dir,
        extra_labels=backend_images.labels,
        backend_repository_prefix=BACKENDS_REPOSITORY,
    )
    store = SqliteStore(settings.database)
    runner = JobRunner(store, 1)
    service = ControllerService(
        settings, store, runner, builder, lambda reqs, py: resolve(reqs, py)
    )
    try:
        yield service
    finally:
        runner.shutdown()
        store.close()


def _build(service: ControllerService, name: str, requirements: list[str]) -> float:
    service.store.insert_environment(
        EnvironmentRow(
            name=name,
            python="3.11",
            requirements=requirements,
            network=False,
            admin=False,
            status="pending",
        )
    )
    started = time.monotonic()
    service.build_environment(name, _Log())
    return time.monotonic() - started


def test_environment_image_with_six(
    env_service: ControllerService, docker_cli: str, backend_images: BuiltBackends
) -> None:
    seconds = _build(env_service, "six-env", ["six"])
    row = env_service.environment("six-env")
    assert row.status == "ready", row.error
    assert row.image is not None
    assert row.lock is not None
    print(f"\nenvironment image {row.image}: built in {seconds:.1f} s")
    image = inspect(docker_cli, row.image, "image")
    labels = image["Config"]["Labels"]
    assert labels["io.beephost.kind"] == KIND_ENVIRONMENT_IMAGE
    assert labels[LABEL_ENVIRONMENT_LOCK] == env_service.resolve(["six"], "3.11").digest
    assert labels["io.beephost.code.version"] == env_service.builder.code_version
    assert (
        labels["io.beephost.test.run"] == backend_images.labels["io.beephost.test.run"]
    )

    # User code's interpreter sees six, and none of the servers' packages.
    run = ["run", "--rm", "--network", "none", *label_args(backend_images.labels)]
    out = docker(
        docker_cli,
        *run,
        row.image,
        ENV_PYTHON,
        "-I",
        "-c",
        "import six; print(six.__version__)",
    )
    assert out.strip()
    probe = "import importlib.util as u; print([u.find_spec(m) is None for m in ('fastapi', 'grpc', 'beephost_core')])"
    assert (
        docker(docker_cli, *run, row.image, ENV_PYTHON, "-I", "-c", probe).strip()
        == "[True, True, True]"
    )

    # Through the pipe server: evaluated by the env's interpreter.
    with socket_directory() as socket_dir:
        name = f"beephost-e2e-envimg-{uuid.uuid4().hex[:8]}"
        with contextlib.ExitStack() as stack:
            backend = _run_pipe(
                docker_cli, row.image, backend_images.labels, socket_dir, name
            )
            stack.callback(remove_container, docker_cli, backend)
            token = "t0k3n-e2e-environment-image"
            _wait_socket(socket_dir[0] / "pipe.sock")
            out = pipe_exec(
                socket_dir[0] / "pipe.sock",
                token,
                "import six, sys\nprint(six.__name__, sys.prefix)\n"
                "try:\n    import fastapi\nexcept ImportError:\n    print('no fastapi')\n",
            )
            assert "six /opt/env" in out
            assert "no fastapi" in out


def _run_pipe(
    docker_cli: str,
    image: str,
    labels: dict[str, str],
    socket_dir: tuple[Path, list[str]],
    name: str,
) -> str:
    args = [
        "run", "-d", "--name", name, *label_args(labels),
        "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,size=64m",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--user", "10001:10001", "--network", "none",
        "-e", "BEEPHOST_PIPE_BACKEND_TOKEN=t0k3n-e2e-environment-image",
        "-v", f"{socket_dir[0]}:/run/beephost", *socket_dir[1],
        image, *server_command("pipe"),
    ]  # fmt: skip
    return docker(docker_cli, *args).strip()


def _wait_socket(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        time.sleep(0.1)
    pytest.fail(f"no socket at {path} after {timeout} s", pytrace=False)


def test_equal_environment_shares_the_image(env_service: ControllerService) -> None:
    if env_service.store.environment("six-env") is None:
        _build(env_service, "six-env", ["six"])
    first = env_service.environment("six-env")
    seconds = _build(env_service, "six-env-2", ["six"])
    second = env_service.environment("six-env-2")
    print(f"\nequal environment re-created in {seconds:.2f} s (no build)")
    assert second.status == "ready"
    assert second.image == first.image
    assert seconds < 10
