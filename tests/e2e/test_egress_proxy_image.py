"""The egress proxy's image for real: built offline through ``DockerImageBuilder``, run
hardened as the controller runs it (without any network here), asked through its
Unix socket, and counted on its metrics socket.

Everything this module creates carries its own label and owner name (the base image is
a test repository's), and is removed by them.
"""

import json
import os
import shutil
import socket
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from beephost_controller import egress_ca
from beephost_controller.egress_proxy_config import token_digest
from beephost_controller.engine.docker_images import DockerEngine
from beephost_controller.images.builder import DockerImageBuilder
from beephost_controller.images.egress_proxy import (
    PROXY_COMMAND,
    PROXY_UID,
    PROXY_USER,
)
from beephost_controller.images.inputs import BuildInputs
from beephost_controller.images.labels import (
    KIND_EGRESS_PROXY_BUILD,
    LABEL_BUILD_KEY,
    LABEL_IMAGE_OWNER,
    LABEL_KIND,
    LABEL_MANAGED,
)
from beephost_controller.images.layout import default_cache_dir, find_workspace
from beephost_controller.images.uv_tools import UvTools
from beephost_controller.settings import Settings
from tests.e2e.containers import docker, inspect, label_args
from tests.e2e.processes import run_captured
from tests.proxy_wire import connect_request, egress_counters, read_head, unix_get

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

RUN = uuid.uuid4().hex[:10]
LABELS = {"io.beephost.test.run": f"egress-proxy-image-{RUN}"}
OWNER = f"egress-image-test-{RUN}"
PREFIX = f"beephost-test-{RUN}"
BACKEND = "b-egress-one"
TOKEN = "egress-token-of-backend-one"


@dataclass
class Built:
    tag: str
    settings: Settings
    inputs: BuildInputs
    engine: DockerEngine
    seconds: float
    log: list[str]


def _settings() -> Settings:
    return Settings.model_validate(
        {
            "name": OWNER,
            "labels": LABELS,
            "base_image_repository": f"{PREFIX}/python",
            "base_image_registry": "",
            "base_image_digests": {},
            "backend_image_prefix": PREFIX,
        }
    )


def _builder(settings: Settings, engine: DockerEngine) -> DockerImageBuilder:
    inputs = BuildInputs(
        workspace=find_workspace(Path(__file__).parent),
        cache_dir=default_cache_dir(),
        tools=UvTools(),
        extra_labels=LABELS,
        repository_prefix=PREFIX,
        controller=OWNER,
    )
    return DockerImageBuilder(settings, runtime=engine, inputs=inputs)


@pytest.fixture(scope="module")
def built(
    docker_client: DockerEngine, require_executable: Callable[[str, str], str]
) -> Iterator[Built]:
    require_executable("mmdebstrap", "apt-get install mmdebstrap")
    settings = _settings()
    builder = _builder(settings, docker_client)
    log: list[str] = []
    try:
        started = time.monotonic()
        tag = builder.ensure_egress_proxy(log.append)
        seconds = time.monotonic() - started
        print(f"\negress proxy image {tag}: {seconds:.1f} s ({log})")
        yield Built(tag, settings, builder._inputs, docker_client, seconds, log)
    finally:
        removed = docker_client.remove_by_labels(LABELS)
        # The base image carries the owner's label, not the test's extra ones.
        removed += docker_client.remove_by_labels({LABEL_IMAGE_OWNER: OWNER})
        print(f"\nremoved {len(removed)} egress proxy test images")


def test_the_image_is_labelled_and_runs_serve_as_a_non_root_user(
    built: Built, docker_cli: str
) -> None:
    image = inspect(docker_cli, built.tag, "image")
    config = image["Config"]
    labels = config["Labels"]
    assert labels[LABEL_MANAGED] == "true"
    assert labels[LABEL_KIND] == "egress-proxy-image"
    assert labels[LABEL_IMAGE_OWNER] == OWNER
    assert labels["io.beephost.test.run"] == LABELS["io.beephost.test.run"]
    assert built.tag.endswith(labels[LABEL_BUILD_KEY][:16])
    assert config["User"] == PROXY_USER
    assert config["Cmd"] == list(PROXY_COMMAND)
    print(f"\nimage size {image['Size'] / 1e6:.1f} MB")
    # The build stage's intermediate images are gone.
    leftovers = docker(
        docker_cli,
        "images", "-aq",
        "--filter", f"label={LABEL_KIND}={KIND_EGRESS_PROXY_BUILD}",
        "--filter", f"label={LABEL_BUILD_KEY}={labels[LABEL_BUILD_KEY]}",
    )  # fmt: skip
    assert leftovers.strip() == ""


def test_a_second_ensure_finds_the_image(built: Built) -> None:
    builder = _builder(built.settings, built.engine)
    log: list[str] = []
    started = time.monotonic()
    assert builder.ensure_egress_proxy(log.append) == built.tag
    assert time.monotonic() - started < 30
    assert not any(line.startswith("building") for line in log), log
    assert any("(cached" in line for line in log), log
    # Never an environment image: the disk's pruning does not see it.
    assert all(built.tag not in image.tags for image in builder.environment_images())


# -- the hardened proxy -----------------------------------------------------------


@dataclass
class Proxy:
    socket: Path
    metrics: Path
    container: str


def _own(path: Path, mode: int) -> None:
    """Owned by the proxy's user (as root: what the controller does), else ours."""
    if os.geteuid() == 0:
        os.chown(path, PROXY_UID, PROXY_UID)
    path.chmod(mode)


@pytest.fixture(scope="module")
def proxy(built: Built, docker_cli: str) -> Iterator[Proxy]:
    # Short: a socket's path is at most 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="bh-egress-", dir="/tmp"))
    state, sockets, metrics = root / "state", root / "socket", root / "metrics"
    for directory in (state, sockets, metrics):
        directory.mkdir()
        _own(directory, 0o755 if directory is state else 0o700)
    sockets.chmod(0o755)  # the sandboxes' side reaches proxy.sock (0666) through it
    # The CA as the controller makes and writes it, owned by the proxy's user as root.
    owner = (PROXY_UID, PROXY_UID) if os.geteuid() == 0 else None
    egress_ca.write_confdir(state / "ca", *egress_ca.make_ca("test"), owner=owner)
    config = {
        "backends": {
            BACKEND: {
                "token_sha256": token_digest(TOKEN),
                "allow": [{"host": "api.allowed.test", "ports": [443]}],
            }
        },
        "secrets": {},
        "blocked": [],
        "hosts": {"api.allowed.test": ["192.0.2.10"]},
    }
    config_path = state / "config.json"
    config_path.write_text(json.dumps(config))
    _own(config_path, 0o600)
    name = f"beephost-egress-test-{RUN}"
    user = [] if os.geteuid() == 0 else ["--user", f"{os.geteuid()}:{os.getegid()}"]
    docker(
        docker_cli,
        "run", "-d", "--name", name,
        *label_args({**LABELS, LABEL_MANAGED: "true"}),
        "--network", "none",
        "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,size=16m",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--memory", "512m", "--pids-limit", "128",
        *user,
        "-v", f"{state}:/run/egress:ro",
        "-v", f"{sockets}:/run/egress-socket",
        "-v", f"{metrics}:/run/egress-metrics",
        built.tag,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        socket_path, metrics_path = sockets / "proxy.sock", metrics / "metrics.sock"
        while not (socket_path.is_socket() and metrics_path.is_socket()):
            state_now = inspect(docker_cli, name, "container")["State"]
            assert state_now["Running"], docker(docker_cli, "logs", name, check=False)
            assert time.monotonic() < deadline, docker(docker_cli, "logs", name)
            time.sleep(0.2)
        yield Proxy(socket_path, metrics_path, name)
    finally:
        print(docker(docker_cli, "logs", name, check=False)[-2000:])
        docker(docker_cli, "rm", "-f", name, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _connect(proxy: Proxy, host: str, credential: str | None) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(proxy.socket))
        sock.sendall(connect_request(host, 443, credential))
        return read_head(sock)


def _counters(proxy: Proxy) -> dict[str, float]:
    status, body = unix_get(proxy.metrics)
    assert status.startswith("HTTP/1.0 200"), status
    return egress_counters(body)


def test_the_hardened_proxy_refuses_through_its_socket_and_counts(
    proxy: Proxy, docker_cli: str
) -> None:
    assert stat.S_IMODE(proxy.socket.stat().st_mode) == 0o666
    before = _counters(proxy)
    assert _connect(proxy, "api.allowed.test", None).startswith(b"HTTP/1.1 407")
    refused = _connect(proxy, "elsewhere.test", f"{BACKEND}:{TOKEN}")
    assert refused.startswith(b"HTTP/1.1 403"), refused
    after = _counters(proxy)
    assert after["refused"] == before.get("refused", 0) + 2
    logs = docker(docker_cli, "logs", proxy.container)
    assert "'elsewhere.test' is not on the allow-list" in logs
    assert TOKEN not in logs
    # Hardened as the design says: nothing writable but the mounts and /tmp.
    container = inspect(docker_cli, proxy.container, "container")["HostConfig"]
    assert container["ReadonlyRootfs"] is True
    assert container["CapDrop"] == ["ALL"]
    assert container["NetworkMode"] == "none"


def test_docker_stop_ends_the_proxy_promptly(proxy: Proxy, docker_cli: str) -> None:
    # Last in the module: the proxy is gone after it. serve.py (PID 1) passes SIGTERM
    # on to mitmdump and exits with it, well before the engine's kill.
    started = time.monotonic()
    docker(docker_cli, "stop", "--time", "20", proxy.container)
    assert time.monotonic() - started < 10
    state = inspect(docker_cli, proxy.container, "container")["State"]
    assert state["ExitCode"] != 0
    logs = run_captured([docker_cli, "logs", proxy.container], timeout=30)
    assert "egress proxy: relaying /run/egress-socket/proxy.sock" in logs.stderr
    assert "egress proxy: mitmdump exited" in logs.stderr
