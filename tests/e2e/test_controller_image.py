"""The controller's image for real: built like the backends' images (offline, on the
session's base, from the session's workspace snapshot), run hardened.

First without a Docker socket (the API, the token, the user, the no-engine mode, the
carried sources), then with the host's socket mounted: an environment is built from
inside the container, which proves the workspace in /opt/beephost-src, uv and the
socket path.

Everything is labelled with the session's label (images: removed by the session fixtures'
cleanup); the containers, volumes, and whatever the in-container controller creates
(labelled ``io.beephost.controller=<its name>``) are removed here.
"""

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from scripts.controller_image import controller_sources_hash, ensure_controller_image
from uv import find_uv_bin

from beephost_client.controller import ControllerClient
from beephost_controller.engine.docker_images import DockerEngine
from beephost_controller.images.backend import BackendImage
from beephost_controller.images.uv_tools import UvTools
from beephost_controller.schemas import BACKEND_TYPES
from tests.e2e.containers import HARDENING as BACKEND_HARDENING
from tests.e2e.containers import (
    docker,
    inspect,
    label_args,
    labelled_object,
    remove_container,
    wait_healthy,
)
from tests.e2e.session_fixtures import BACKENDS_REPOSITORY, BuiltBackends, unavailable

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

CONTROLLER_LABEL = "io.beephost.controller"
DOCKER_SOCKET = Path("/var/run/docker.sock")
#: The production posture, minus --user: the image's own USER is under test.
_USER = BACKEND_HARDENING.index("--user")
HARDENING = BACKEND_HARDENING[:_USER] + BACKEND_HARDENING[_USER + 2 :]

REPO = Path(__file__).resolve().parents[2]


@dataclass
class RunningController:
    container: str
    url: str
    token: str
    healthy_after: float


@pytest.fixture(scope="module")
def controller_image(
    backend_images: BuiltBackends, docker_client: DockerEngine
) -> BackendImage:
    """The controller's image in the session's test repository (a cache hit after)."""

    def ensure() -> BackendImage:
        # Into <BACKENDS_REPOSITORY>/controller.
        return ensure_controller_image(
            backend_images.base, docker_client, backend_images.inputs(tools=UvTools())
        )

    image = ensure()
    again = ensure()
    assert (again.built, again.image_id) == (False, image.image_id)
    print(
        f"\ncontroller {image.tag}: built={image.built} in {image.seconds:.1f} s, "
        f"{image.size / 1e6:.1f} MB; cache hit in {again.seconds:.1f} s"
    )
    return image


@contextmanager
def run_controller(
    docker_cli: str,
    image: str,
    labels: Mapping[str, str],
    *args: str,
    env: Mapping[str, str] | None = None,
) -> Iterator[RunningController]:
    """``docker run`` the image hardened, API on a random 127.0.0.1 port; wait healthy."""
    token = secrets.token_urlsafe(24)
    settings = {"TOKEN": token, **(env or {})}
    run = ["run", "-d", *label_args(labels), *HARDENING, *args]
    for name, value in settings.items():
        run += ["-e", f"BEEPHOST_CONTROLLER_{name}={value}"]
    # A named volume for /var/lib/beephost (a fresh one takes the image's owner).
    with labelled_object(docker_cli, "volume", "beephost-e2e-ctr", labels) as state:
        run += ["-v", f"{state}:/var/lib/beephost", "-p", "127.0.0.1::8600"]
        container = docker(docker_cli, *run, image).strip()
        try:
            healthy_after = wait_healthy(docker_cli, container)
            bindings = inspect(docker_cli, container)["NetworkSettings"]["Ports"]
            (host,) = bindings["8600/tcp"]
            assert host["HostIp"] == "127.0.0.1"
            yield RunningController(
                container,
                f"http://127.0.0.1:{host['HostPort']}",
                token,
                healthy_after,
            )
        finally:
            remove_container(docker_cli, container)


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    """GET on loopback (no proxy); the status of an error answer too."""
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def in_container(docker_cli: str, container: str, *command: str) -> str:
    return docker(docker_cli, "exec", "-w", "/opt/beephost-src", container, *command)


def test_image_labels_and_entrypoint(
    controller_image: BackendImage, docker_cli: str
) -> None:
    config = inspect(docker_cli, controller_image.tag, "image")["Config"]
    labels = config["Labels"]
    assert labels["io.beephost.kind"] == "controller-image"
    assert "io.beephost.backend" not in labels
    assert labels["io.beephost.build.key"] == controller_image.build_key
    assert labels["org.opencontainers.image.title"] == "beephost-controller"
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/opt/beephost/bin/beephost-controller"]
    assert config["Healthcheck"]["Test"] == [
        "CMD",
        "/opt/beephost/bin/beephost-controller",
        "healthcheck",
    ]
    assert list(config["Volumes"]) == ["/var/lib/beephost"]
    assert list(config["ExposedPorts"]) == ["8600/tcp"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["BEEPHOST_CONTROLLER_WORKSPACE"] == "/opt/beephost-src"
    assert env["UV"] == "/opt/beephost/bin/uv"
    assert env["PATH"].startswith("/opt/beephost/bin:")
    for alias in controller_image.aliases:
        assert inspect(docker_cli, alias, "image")["Id"] == controller_image.image_id
    assert controller_image.aliases[-1].endswith("/controller:local")


def test_hardened_without_a_docker_socket(
    controller_image: BackendImage,
    backend_images: BuiltBackends,
    docker_cli: str,
) -> None:
    with run_controller(
        docker_cli, controller_image.tag, backend_images.labels
    ) as controller:
        print(f"\ncontroller healthy {controller.healthy_after:.1f} s after the start")
        assert get(f"{controller.url}/ready")[0] == 200
        assert get(f"{controller.url}/api/v1/runtimes")[0] == 401
        status, body = get(f"{controller.url}/api/v1/runtimes", controller.token)
        assert status == 200
        assert {runtime["python"] for runtime in json.loads(body)} >= {"3.11"}
        # The console's templates and static files are in the image (package data).
        status, page = get(f"{controller.url}/console/sign-in")
        assert status == 200
        assert b'type="password"' in page
        assert get(f"{controller.url}/console/static/console.css")[0] == 200

        status_lines = in_container(
            docker_cli, controller.container, "cat", "/proc/1/status"
        ).splitlines()
        ids = [
            line.split()[1:]
            for line in status_lines
            if line.startswith(("Uid:", "Gid:"))
        ]
        assert ids == [["10001"] * 4, ["10001"] * 4]

        # No engine: the API serves, a build fails with the reason.
        with ControllerClient(controller.url, token=controller.token) as client:
            env = client.create_environment("e", requirements=[])
            assert env.job_id is not None
            job = client.wait_job(env.job_id, timeout=60)
        assert not job.succeeded
        assert "no container engine" in (job.error or "")

        # The sources are exactly the workspace's, and uv works on them offline in
        # the read-only container.
        carried = in_container(
            docker_cli,
            controller.container,
            "python",
            "-c",
            # The release tools' own code (not installed in the image), on the image's
            # controller package: the same hash, computed in the container.
            (REPO / "scripts" / "controller_image.py").read_text()
            + "\nprint(controller_sources_hash(Path('.')))",
        )
        assert carried.strip() == controller_sources_hash(backend_images.workspace)
        exported = in_container(
            docker_cli,
            controller.container,
            "uv",
            "export",
            "--offline",
            "--locked",
            "--no-dev",
            "--package",
            "beephost-rpc-backend",
            "--no-editable",
            "--no-header",
        )
        assert "./services/rpc-backend" in exported.splitlines()
        in_container(
            docker_cli,
            controller.container,
            "uv",
            "build",
            "--offline",
            "--wheel",
            "--quiet",
            "-o",
            "/tmp/wheels",
            "services/pipe-backend",
        )
        wheels = in_container(docker_cli, controller.container, "ls", "/tmp/wheels")
        assert wheels.split() == ["beephost_pipe_backend-0.1.0-py3-none-any.whl"]
        assert (
            subprocess.run(
                [docker_cli, "exec", controller.container, "touch", "/opt/x"],
                capture_output=True,
                timeout=30,
                check=False,
            ).returncode
            != 0
        )


def test_builds_an_environment_through_the_docker_socket(
    controller_image: BackendImage,
    backend_images: BuiltBackends,
    docker_cli: str,
) -> None:
    if not DOCKER_SOCKET.is_socket():
        unavailable(f"no Docker socket at {DOCKER_SOCKET}")
    # Backend images are keyed by the installer too: the image runs the locked uv
    # (uv.lock), the session built its own with whatever uv the host has. Built here
    # with the locked uv, they are the ones the in-container controller looks for, so
    # an empty environment needs no package index from inside the container.
    prefix = f"{BACKENDS_REPOSITORY}/incontainer"
    locked_uv = find_uv_bin()
    image_uv = docker(
        docker_cli,
        "run",
        "--rm",
        "--entrypoint",
        "/opt/beephost/bin/uv",
        *label_args(backend_images.labels),
        controller_image.tag,
        "--version",
    )
    host_uv = subprocess.run(
        [locked_uv, "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert image_uv.split()[:2] == host_uv.split()[:2]
    for kind in BACKEND_TYPES:
        started = time.monotonic()
        # The session's image has the same inputs (its workspace snapshot, labels,
        # the locked uv), so the same key: tagged into this prefix, it is found
        # there, not built again (a different key still builds).
        session_tag = backend_images.images[kind].tag
        docker(
            docker_cli, "tag", session_tag, f"{prefix}/{session_tag.split('/', 1)[1]}"
        )
        backend = backend_images.ensure(kind, prefix, UvTools(locked_uv))
        assert not backend.built, f"{kind}: the session's image was not reused"
        print(f"\n{backend.tag}: {time.monotonic() - started:.1f} s")

    name = f"e2e-ctr-{uuid.uuid4().hex[:10]}"
    settings = {
        "NAME": name,
        "PYTHONS": '["3.11"]',
        # Its own repository: an equal environment another module's controller built
        # in the session's shared one would be found there, and nothing built here.
        "ENVIRONMENT_REPOSITORY": f"{prefix}/env",
        "BASE_IMAGE_REPOSITORY": f"{BACKENDS_REPOSITORY}/python",
        "BACKEND_IMAGE_PREFIX": prefix,
        "LABELS": json.dumps(dict(backend_images.labels)),
    }
    socket_args = (
        "-v",
        f"{DOCKER_SOCKET}:{DOCKER_SOCKET}",
        "--group-add",
        str(os.stat(DOCKER_SOCKET).st_gid),
    )
    lines: list[str] = []
    try:
        with run_controller(
            docker_cli,
            controller_image.tag,
            backend_images.labels,
            *socket_args,
            env=settings,
        ) as controller:
            print(f"controller healthy {controller.healthy_after:.1f} s after start")
            started = time.monotonic()
            with ControllerClient(
                controller.url, token=controller.token, timeout=60
            ) as client:
                env = client.create_environment("e", requirements=[])
                assert env.job_id is not None
                job = client.wait_job(
                    env.job_id, timeout=600, on_log=lambda line: lines.append(line.line)
                )
                assert job.succeeded, f"{job.error}\n" + "\n".join(lines[-30:])
                built = client.environment("e")
            print(
                f"environment built in the container in {time.monotonic() - started:.1f} s"
            )
            for kind in BACKEND_TYPES:
                assert any(
                    line.startswith(f"{kind} backend image {prefix}/{kind}-backend:")
                    and line.endswith("(cached)")
                    for line in lines
                ), "\n".join(lines)
            assert built.status == "ready"
            assert built.image is not None
            info = inspect(docker_cli, built.image, "image")
            assert info["Config"]["Labels"].items() >= backend_images.labels.items()
    finally:
        for container in docker(
            docker_cli, "ps", "-aq", "--filter", f"label={CONTROLLER_LABEL}={name}"
        ).split():
            remove_container(docker_cli, container)
        for network in docker(
            docker_cli,
            "network",
            "ls",
            "-q",
            "--filter",
            f"label={CONTROLLER_LABEL}={name}",
        ).split():
            docker(docker_cli, "network", "rm", network, check=False)
