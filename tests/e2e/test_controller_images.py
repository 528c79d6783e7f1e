"""Environment images on the real engine: the three servers plus the env's packages.

Builds on the session's test backend images (tests/e2e/session_fixtures.py), in test
repositories, labelled with the session's run label: cleanup is by that label only.
"""

import contextlib
import time
import uuid
from pathlib import Path

import pytest

from beephost_controller.images.labels import (
    KIND_ENVIRONMENT_BUILD,
    KIND_ENVIRONMENT_IMAGE,
    KIND_SERVERS_IMAGE,
    LABEL_ENVIRONMENT_LOCK,
    LABEL_SERVERS_IMAGE,
)
from beephost_controller.images.layout import ENV_PYTHON, server_command
from beephost_controller.service import ControllerService
from tests.e2e.containers import (
    docker,
    inspect,
    label_args,
    pipe_exec,
    remove_container,
    socket_directory,
)
from tests.e2e.environment_service import RecordingLog, module_environment_service
from tests.e2e.session_fixtures import BuiltBackends
from tests.unit.controller.support import pending_environment

pytestmark = pytest.mark.docker


env_service = module_environment_service("env_service", "ctl", "env-images-test")


def _build(
    service: ControllerService, name: str, requirements: list[str]
) -> tuple[float, list[str]]:
    service.store.insert_environment(pending_environment(name, requirements))
    log = RecordingLog()
    started = time.monotonic()
    service.build_environment(name, log)
    return time.monotonic() - started, log.lines


def check_layering(docker_cli: str, image: str, labels: dict[str, str]) -> str:
    """The environment image is its servers image plus one layer; returns the servers
    image's id. Also: it runs as 10001 with no command, entrypoint or health check of
    its own, and no install container is left."""
    servers_id = inspect(docker_cli, image, "image")["Config"]["Labels"][
        LABEL_SERVERS_IMAGE
    ]
    servers = inspect(docker_cli, servers_id, "image")
    assert servers["Config"]["Labels"]["io.beephost.kind"] == KIND_SERVERS_IMAGE
    env = inspect(docker_cli, image, "image")
    layers = servers["RootFS"]["Layers"]
    assert env["RootFS"]["Layers"][: len(layers)] == layers
    assert len(env["RootFS"]["Layers"]) == len(layers) + 1
    config = env["Config"]
    assert config["User"] == "10001:10001"
    assert not config.get("Entrypoint")
    assert not config.get("Cmd")
    assert config["Healthcheck"]["Test"] == ["NONE"]
    assert not config.get("Volumes")  # no anonymous volume per backend container
    assert config["Labels"]["io.beephost.kind"] == KIND_ENVIRONMENT_IMAGE
    left = docker(
        docker_cli, "ps", "-aq",
        "--filter", f"label=io.beephost.kind={KIND_ENVIRONMENT_BUILD}",
        *(arg for k, v in labels.items() for arg in ("--filter", f"label={k}={v}")),
    )  # fmt: skip
    assert left.strip() == "", "an install container was left behind"
    return str(servers_id)


def test_environment_image_with_six(
    env_service: ControllerService, docker_cli: str, backend_images: BuiltBackends
) -> None:
    seconds, lines = _build(env_service, "six-env", ["six"])
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
    check_layering(docker_cli, row.image, backend_images.labels)
    assert any(line.startswith("servers image ") for line in lines), lines

    # User code's interpreter sees six (compiled, readable by the default user 10001),
    # and none of the servers' packages; the wheelhouse is not in the image.
    run = ["run", "--rm", "--network", "none", *label_args(backend_images.labels)]
    out = docker(
        docker_cli,
        *run,
        row.image,
        ENV_PYTHON,
        "-I",
        "-c",
        "import os, six, sys; print(os.getuid(), six.__version__, sys.prefix,"
        " six.__cached__ is not None and os.path.exists(six.__cached__),"
        " os.path.exists('/wheels'))",
    )
    uid, version, prefix, compiled, wheels = out.split()
    assert (uid, prefix, compiled, wheels) == ("10001", "/opt/env", "True", "False")
    assert version == "1.17.0"
    assert docker(docker_cli, *run, row.image, "ls", "-A", "/tmp").strip() == ""
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
    seconds, lines = _build(env_service, "six-env-2", ["six"])
    second = env_service.environment("six-env-2")
    print(f"\nequal environment re-created in {seconds:.2f} s (no build)")
    assert second.status == "ready"
    assert second.image == first.image
    assert not any(line.startswith(("building", "built")) for line in lines), lines


def test_other_requirements_reuse_the_servers_image(
    env_service: ControllerService, docker_cli: str, backend_images: BuiltBackends
) -> None:
    if env_service.store.environment("six-env") is None:
        _build(env_service, "six-env", ["six"])
    six = env_service.environment("six-env")
    assert six.image is not None
    servers_id = check_layering(docker_cli, six.image, backend_images.labels)

    seconds, lines = _build(env_service, "attrs-env", ["attrs==25.4.0"])
    row = env_service.environment("attrs-env")
    assert row.status == "ready", row.error
    assert row.image is not None
    print(f"\nenvironment with attrs on the existing servers image: {seconds:.1f} s")
    assert check_layering(docker_cli, row.image, backend_images.labels) == servers_id
    servers = [line for line in lines if line.startswith("servers image ")]
    assert len(servers) == 1
    assert servers[0].endswith("(cached)"), servers
    run = ["run", "--rm", "--network", "none", *label_args(backend_images.labels)]
    out = docker(
        docker_cli, *run, row.image, ENV_PYTHON, "-I", "-c",
        "import attrs, importlib.util as u; print(attrs.__version__, u.find_spec('six') is None)",
    )  # fmt: skip
    assert out.split() == ["25.4.0", "True"]


def test_environment_without_requirements_is_the_servers_image_labelled(
    env_service: ControllerService, docker_cli: str, backend_images: BuiltBackends
) -> None:
    seconds, _ = _build(env_service, "bare-env", [])
    row = env_service.environment("bare-env")
    assert row.status == "ready", row.error
    assert row.image is not None
    print(f"\nenvironment without requirements: {seconds:.1f} s")
    servers_id = check_layering_or_labelled(docker_cli, row.image)
    assert servers_id
    run = ["run", "--rm", "--network", "none", *label_args(backend_images.labels)]
    out = docker(
        docker_cli, *run, row.image, ENV_PYTHON, "-I", "-c",
        "import os, sys; print(os.getuid(), sys.prefix, sorted(os.listdir(sys.prefix)))",
    )  # fmt: skip
    assert (
        out.strip() == "10001 /opt/env ['bin', 'include', 'lib', 'lib64', 'pyvenv.cfg']"
    )


def check_layering_or_labelled(docker_cli: str, image: str) -> str:
    """An image without requirements: the servers image's layers exactly, new labels."""
    env = inspect(docker_cli, image, "image")
    servers_id = env["Config"]["Labels"][LABEL_SERVERS_IMAGE]
    servers = inspect(docker_cli, servers_id, "image")
    assert env["RootFS"]["Layers"] == servers["RootFS"]["Layers"]
    assert env["Config"]["User"] == "10001:10001"
    assert env["Config"]["Labels"]["io.beephost.kind"] == KIND_ENVIRONMENT_IMAGE
    return str(servers_id)
