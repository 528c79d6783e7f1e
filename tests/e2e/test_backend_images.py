"""Backend images for real: offline builds on the pinned base, hardened containers.

The images and containers come from session fixtures in session_fixtures.py (built once, also
used by test_contract_containers.py), labelled with the session's unique label and
removed by it.
"""

import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from scripts.controller_image import export_wheelhouse, manual_build_command

from beephost_controller.engine.docker_images import DockerEngine
from beephost_controller.images.inputs import BuildInputs
from beephost_controller.images.labels import (
    KIND_BACKEND_BUILD,
    LABEL_BUILD_KEY,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_PYTHON_VERSION,
)
from beephost_controller.images.layout import (
    CONTAINER_PORTS,
    LISTEN_SETTINGS,
    METRICS_PORTS,
)
from beephost_controller.schemas import BACKEND_TYPES, BackendType
from tests.e2e.containers import (
    HARDENING,
    ISOLATED,
    ISOLATION_PROBE,
    RunningBackend,
    docker,
    grpc_health,
    http_get,
    inspect,
    label_args,
    one_off_run,
    pipe_exec,
    run_code,
    wait_healthy,
)
from tests.e2e.processes import run_captured
from tests.e2e.session_fixtures import BACKENDS_REPOSITORY, BuiltBackends

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

#: Nothing that builds or installs may be left in a final image.
NO_BUILD_TOOLS = (
    "test ! -e /wheels"
    " && test ! -e /opt/beephost/bin/pip"
    " && test ! -e /opt/beephost/bin/uv"
    " && ! command -v gcc && ! command -v cc && ! command -v ld && ! command -v make"
    " && ! command -v uv && ! command -v pip && ! command -v pip3"
    " && test -z \"$(/opt/beephost/bin/python -c 'import glob;"
    ' print(*glob.glob("/opt/beephost/**/*.whl", recursive=True))\')"'
    " && echo clean"
)
# (The base image's /usr/share/python-wheels, pip and setuptools for ensurepip, stay:
# `python3 -m venv` of environments needs them.)


@pytest.mark.parametrize("kind", BACKEND_TYPES)
def test_image_labels_user_and_healthcheck(
    backend_images: BuiltBackends, docker_cli: str, kind: BackendType
) -> None:
    image = backend_images.images[kind]
    config = inspect(docker_cli, image.tag, "image")["Config"]
    labels = config["Labels"]
    assert labels[LABEL_MANAGED] == "true"
    assert labels[LABEL_KIND] == "backend-image"
    assert labels["io.beephost.backend"] == kind
    assert labels[LABEL_PYTHON_VERSION] == backend_images.base.python_version
    assert labels["io.beephost.code.version"] == image.code_version
    assert labels["org.opencontainers.image.title"] == f"beephost-{kind}-backend"
    assert labels["org.opencontainers.image.version"] == image.code_version
    assert config["User"] == "10001:10001"
    # One Dockerfile: the shared name is a link to the kind's console script.
    assert config["Healthcheck"]["Test"] == [
        "CMD",
        "/opt/beephost/bin/beephost-backend",
        "healthcheck",
    ]
    assert config["Entrypoint"] == ["/opt/beephost/bin/beephost-backend"]
    environment = dict(item.split("=", 1) for item in config["Env"])
    assert "/opt/beephost" not in environment["PATH"]
    prefix = f"BEEPHOST_{kind.upper()}_BACKEND_"
    assert environment[f"{prefix}PYTHON"] == "/usr/bin/python3"
    setting, value = LISTEN_SETTINGS[kind]
    assert environment[f"{prefix}{setting}"] == value
    ports = {CONTAINER_PORTS[kind], METRICS_PORTS[kind]} - {None}
    assert set(config["ExposedPorts"]) == {f"{port}/tcp" for port in ports}
    assert not config.get("Volumes")  # a pipe client mounts the socket's directory
    print(f"\n{kind}-backend: {image.size / 1e6:.1f} MB ({image.tag})")
    assert image.size < 250e6


@pytest.mark.parametrize("kind", BACKEND_TYPES)
def test_second_call_is_a_cache_hit(
    backend_images: BuiltBackends, docker_cli: str, kind: str
) -> None:
    first = backend_images.images[kind]
    started = time.monotonic()
    again = backend_images.ensure(kind)
    elapsed = time.monotonic() - started
    print(f"\ncache hit for {kind} in {elapsed * 1000:.0f} ms")
    assert again.built is False
    assert (again.tag, again.image_id) == (first.tag, first.image_id)
    leftovers = docker(
        docker_cli,
        "images",
        "-a",
        "-q",
        "--filter",
        f"label={LABEL_KIND}={KIND_BACKEND_BUILD}",
        "--filter",
        f"label={LABEL_BUILD_KEY}={first.build_key}",
    )
    assert leftovers.strip() == ""  # the build stage's images are gone


@pytest.mark.parametrize("kind", BACKEND_TYPES)
def test_image_has_no_compiler_or_wheelhouse(
    backend_images: BuiltBackends, docker_cli: str, kind: str
) -> None:
    output = docker(
        docker_cli,
        *one_off_run(
            backend_images.labels,
            "--entrypoint",
            "/bin/sh",
            backend_images.images[kind].tag,
            "-c",
            NO_BUILD_TOOLS,
        ),
    )
    assert output.strip() == "clean"


@pytest.mark.parametrize("kind", BACKEND_TYPES)
def test_the_image_holds_the_code_of_its_boots_dataclasses(
    backend_images: BuiltBackends, docker_cli: str, kind: str
) -> None:
    # Recorded at the build (beephost_core.dataclass_code): a start compiles none.
    probe = (
        "import importlib\n"
        "from beephost_core import dataclass_code\n"
        f"from beephost_{kind}_backend.__main__ import BOOT_MODULES\n"
        "used = dataclass_code.use()\n"
        "for module in BOOT_MODULES:\n"
        "    importlib.import_module(module)\n"
        "print(used.texts, used.ran, used.compiled)\n"
    )
    output = docker(
        docker_cli,
        *one_off_run(
            backend_images.labels,
            "--entrypoint",
            "/opt/beephost/bin/python",
            backend_images.images[kind].tag,
            "-c",
            probe,
        ),
    )
    texts, ran, compiled = map(int, output.split())
    assert texts >= 100, output
    # Two classes may share a text (the same fields): it runs twice, recorded once.
    assert ran >= texts, output
    assert compiled == 0, output


@pytest.mark.parametrize("kind", BACKEND_TYPES)
def test_container_is_healthy_hardened_and_not_root(
    backend_containers: dict[str, RunningBackend], docker_cli: str, kind: str
) -> None:
    backend = backend_containers[kind]
    state = inspect(docker_cli, backend.container)
    assert state["State"]["Health"]["Status"] == "healthy"
    host = state["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert docker(docker_cli, "exec", backend.container, "id", "-u").strip() == "10001"
    assert (
        docker(docker_cli, "exec", backend.container, "id", "-un").strip() == "beephost"
    )
    denied = subprocess.run(
        [docker_cli, "exec", backend.container, "touch", "/opt/beephost/x"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert denied.returncode != 0
    # How soon is bench/'s to measure (a loaded host took 49 s): reported, not asserted.
    print(f"\n{kind}-backend: healthy {backend.healthy_after:.1f} s after start")


@pytest.mark.parametrize("kind", BACKEND_TYPES)
def test_user_code_cannot_import_the_servers_packages(
    backend_containers: dict[str, RunningBackend], kind: str
) -> None:
    # Through the backend's own transport: the server runs on its venv, the code it
    # runs sees the bare interpreter, even from a subprocess found on PATH.
    assert run_code(backend_containers[kind], ISOLATION_PROBE).strip() == ISOLATED


def test_pipe_socket_appears_in_the_mounted_directory_and_answers(
    backend_containers: dict[str, RunningBackend],
) -> None:
    backend = backend_containers["pipe"]
    assert backend.socket_dir is not None
    path = backend.socket_dir / "pipe.sock"
    info = path.stat()
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert pipe_exec(path, backend.token, "print(6 * 7)") == "42\n"


def test_http_health_on_the_published_loopback_port(
    backend_containers: dict[str, RunningBackend],
) -> None:
    backend = backend_containers["http"]
    assert set(backend.ports) == {5678}
    status, body = http_get(f"{backend.url}/health")
    assert status == 200, body


def test_grpc_health_serving_on_the_published_loopback_port(
    backend_containers: dict[str, RunningBackend],
) -> None:
    backend = backend_containers["rpc"]
    assert 50051 in backend.ports
    assert grpc_health(backend.url.removeprefix("grpc://")) == "SERVING"


def test_pipe_socket_is_shared_through_a_named_volume(
    backend_images: BuiltBackends, docker_cli: str
) -> None:
    # The deployment shape: the server and its clients mount one volume on
    # /run/beephost; a client in the server's group reaches the 0660 socket.
    labels = backend_images.labels
    image = backend_images.images["pipe"].tag
    volume = f"beephost-e2e-{uuid.uuid4().hex[:12]}"
    docker(docker_cli, "volume", "create", *label_args(labels), volume)
    token = "volume-test-token"
    server = docker(
        docker_cli,
        "run",
        "-d",
        "--network=none",
        *label_args(labels),
        *HARDENING,
        "-e",
        f"BEEPHOST_PIPE_BACKEND_TOKEN={token}",
        "-v",
        f"{volume}:/run/beephost",
        image,
    ).strip()
    try:
        wait_healthy(docker_cli, server)
        client = one_off_run(
            labels,
            "--user",  # the last --user wins: another uid, the server's group
            "20000:10001",
            "-e",
            f"BEEPHOST_PIPE_BACKEND_TOKEN={token}",
            "-v",
            f"{volume}:/run/beephost",
            image,
            "healthcheck",
        )
        assert docker(docker_cli, *client).strip() == "ready"
        outsider = run_captured(
            [docker_cli, *client[:-3], "--user", "20000:20000", *client[-3:]],
            timeout=60,
        )
        assert outsider.returncode != 0  # neither the owner nor in its group
    finally:
        docker(docker_cli, "rm", "-f", "-v", server, check=False)
        docker(docker_cli, "volume", "rm", "-f", volume, check=False)


def test_docker_cli_builds_the_same_dockerfile_from_the_repository_root(
    backend_images: BuiltBackends, docker_client: DockerEngine, docker_cli: str
) -> None:
    # What a developer does by hand: export the wheelhouse into the (snapshot)
    # repository, then run the `docker build` that `--export-wheelhouse` prints.
    workspace: Path = backend_images.workspace
    export_wheelhouse("pipe", backend_images.base, BuildInputs(workspace=workspace))
    build_key = f"e2e-cli-{uuid.uuid4().hex[:12]}"
    tag = f"{BACKENDS_REPOSITORY}/pipe-backend:cli-{build_key}"
    command = manual_build_command("pipe", backend_images.base, tag)
    started = time.monotonic()
    try:
        docker(
            docker_cli,
            *command[1:-1],
            "--force-rm",
            "-q",
            *label_args(backend_images.labels),
            "--build-arg",
            f"BUILD_KEY={build_key}",
            str(workspace),
            timeout=600,
        )
        print(
            f"\ndocker build (CLI) of the pipe backend: {time.monotonic() - started:.1f} s"
        )
        output = docker(
            docker_cli,
            *one_off_run(
                backend_images.labels,
                "--entrypoint",
                "/opt/beephost/bin/python",
                tag,
                "-c",
                "import beephost_pipe_backend, pydantic; print('ok')",
            ),
        )
        assert output.strip() == "ok"
    finally:
        # Its build stage carries our unique build key: remove exactly that.
        docker_client.remove_by_labels(
            {LABEL_KIND: KIND_BACKEND_BUILD, LABEL_BUILD_KEY: build_key}
        )


def test_pipe_socket_unreachable_without_the_volume_is_a_clean_failure(
    backend_images: BuiltBackends, docker_cli: str
) -> None:
    # The healthcheck subcommand against a server that is not there: exit 1, a reason.
    result = run_captured(
        [
            docker_cli,
            *one_off_run(
                backend_images.labels, backend_images.images["pipe"].tag, "healthcheck"
            ),
        ],
        timeout=60,
    )
    assert result.returncode == 1
    assert "FileNotFoundError" in result.stdout or "No such file" in result.stdout
