"""The Prometheus image of the compose deployment, built without a registry.

``scripts/build-prometheus-image`` builds (or finds) ``beephost/prometheus:local`` on a
Debian rootfs; this module checks the image's posture, the shipped scrape config, and
a real scrape on a user-defined network: Prometheus itself plus a small Python target
behind a bearer token, as the HTTP backend's ``/metrics`` is.

Everything this module creates carries a unique ``io.beephost.test.run`` label and is
removed by it. Images found by the script's cache (built earlier, without the label)
are used as they are and left alone.
"""

import json
import os
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.containers import (
    docker,
    http_get,
    inspect,
    label_args,
    labelled_object,
    remove_container,
    wait_healthy,
)
from tests.e2e.processes import run_captured
from tests.e2e.session_fixtures import unavailable

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "build-prometheus-image"
SHIPPED_CONFIG = REPO / "monitoring" / "prometheus" / "prometheus.yml"
IMAGE = "beephost/prometheus:local"
PYTHON_IMAGE = "beephost/python:3.11"
#: Prometheus X.Y per Debian suite: what scripts/build-prometheus-image pins.
PINS = {"bookworm": "2.42", "trixie": "2.53"}
HEALTHCHECK = [
    "CMD", "/bin/promtool", "check", "healthy", "--url=http://127.0.0.1:9090",
]  # fmt: skip
#: Prometheus 2.42's promtool has no `check healthy`: the script's extra layer.
HEALTHCHECK_QUERY = [
    "CMD", "/bin/promtool", "query", "instant", "http://127.0.0.1:9090", "vector(1)",
]  # fmt: skip
TARGET_TOKEN = "scrape-t0ken-for-tests-0123456789"
SCRAPE_TIMEOUT = 20.0

#: What the scrape target serves (Prometheus text exposition format 0.0.4).
METRICS_TEXT = (
    "# HELP beephost_test_answer A constant for the scrape test.\n"
    "# TYPE beephost_test_answer gauge\n"
    "beephost_test_answer 42\n"
)
#: The scrape target: /metrics only with the bearer token, 401 without it.
TARGET_SERVER = """\
import http.server, os
TOKEN = os.environ["TARGET_TOKEN"]
BODY = @BODY@.encode()

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/metrics":
            self.send_error(404)
        elif self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_error(401)
        else:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

http.server.ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
""".replace("@BODY@", repr(METRICS_TEXT))

#: The tiny config of the scrape test: both jobs as in the shipped file's style.
SCRAPE_CONFIG = {
    "global": {"scrape_interval": "1s", "evaluation_interval": "5s"},
    "scrape_configs": [
        {
            "job_name": "prometheus",
            "static_configs": [
                {"targets": ["localhost:9090"], "labels": {"service": "prometheus"}}
            ],
        },
        {
            "job_name": "target",
            "metrics_path": "/metrics",
            "authorization": {
                "type": "Bearer",
                "credentials_file": "/etc/prometheus/secrets/target-token",
            },
            "static_configs": [
                {"targets": ["target:8000"], "labels": {"service": "target"}}
            ],
        },
    ],
}


@dataclass(frozen=True)
class BuiltImage:
    """What one run of the build script reported for the image."""

    tag: str
    image_id: str
    version: str
    suite: str
    built: bool
    seconds: float
    size_mb: float


def parse_report(stdout: str) -> dict[str, dict[str, str]]:
    """The script's ``key=value`` lines, by tag."""
    lines = [
        dict(f.split("=", 1) for f in line.split()) for line in stdout.splitlines()
    ]
    return {line["tag"]: line for line in lines if "tag" in line}


def run_script(*args: str, timeout: float = 900) -> dict[str, dict[str, str]]:
    result = run_captured([str(SCRIPT), *args], timeout=timeout, cwd="/")
    if result.returncode != 0:
        pytest.fail(
            f"build-prometheus-image exited {result.returncode}:\n"
            f"{result.stderr.strip()[-3000:]}",
            pytrace=False,
        )
    return parse_report(result.stdout)


@pytest.fixture(scope="module")
def run_labels() -> dict[str, str]:
    return {"io.beephost.test.run": f"prometheus-{uuid.uuid4().hex[:12]}"}


def remove_images_by_labels(docker_cli: str, labels: dict[str, str]) -> list[str]:
    """Remove the images carrying ``labels``: images built on others first."""
    filters = [arg for k, v in labels.items() for arg in ("--filter", f"label={k}={v}")]
    ids = docker(docker_cli, "image", "ls", "-q", "--no-trunc", *filters).split()
    order = {"prometheus-image": 0, "prometheus-base-image": 2}
    kinds = {
        image_id: inspect(docker_cli, image_id, "image")["Config"]["Labels"].get(
            "io.beephost.kind", ""
        )
        for image_id in dict.fromkeys(ids)
    }
    removed = []
    for image_id in sorted(kinds, key=lambda i: order.get(kinds[i], 1)):
        result = run_captured([docker_cli, "image", "rm", image_id], timeout=120)
        if result.returncode == 0:
            removed.append(image_id)
        else:
            print(f"kept {image_id}: {result.stderr.strip()}")
    return removed


@pytest.fixture(scope="module")
def prometheus_image(
    docker_cli: str,
    require_executable: Callable[[str, str], str],
    run_labels: dict[str, str],
) -> Iterator[BuiltImage]:
    """The image, built by the script with this module's label (or found in its cache)."""
    found = subprocess.run(
        [docker_cli, "image", "inspect", IMAGE], capture_output=True, check=False
    )
    if found.returncode != 0:
        require_executable("mmdebstrap", "apt-get install mmdebstrap")
    label = next(f"{k}={v}" for k, v in run_labels.items())
    try:
        report = run_script("--label", label)
        line = report[IMAGE]
        image = BuiltImage(
            tag=IMAGE,
            image_id=line["id"],
            version=line["version"],
            suite=line["suite"],
            built=line["built"] == "true",
            seconds=float(line["seconds"]),
            size_mb=float(line["size_mb"]),
        )
        print(
            f"\n{IMAGE}: prometheus {image.version} ({image.suite}), "
            f"built={image.built} in {image.seconds:.1f} s, {image.size_mb:.0f} MB"
        )
        yield image
    finally:
        removed = remove_images_by_labels(docker_cli, run_labels)
        print(f"\nremoved {len(removed)} prometheus test images")


@pytest.fixture
def network(docker_cli: str, run_labels: dict[str, str]) -> Iterator[str]:
    """A user-defined bridge network of this test only."""
    with labelled_object(
        docker_cli, "network", "beephost-prom-test", run_labels
    ) as name:
        yield name


@pytest.fixture(scope="module")
def python_image(docker_cli: str) -> str:
    """The project's base image: the scrape target runs ``python3`` from it."""
    found = subprocess.run(
        [docker_cli, "image", "inspect", PYTHON_IMAGE], capture_output=True, check=False
    )
    if found.returncode != 0:
        build = run_captured(
            [str(REPO / "scripts" / "build-base-image"), "--python", "3.11"],
            timeout=900,
        )
        if build.returncode != 0:
            unavailable(f"cannot build {PYTHON_IMAGE}: {build.stderr.strip()[-1500:]}")
    return PYTHON_IMAGE


def write_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o644)  # read by uid 65534 through a bind mount
    return path


def api(port: int, path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    status, body = http_get(f"http://127.0.0.1:{port}/api/v1/{path}{query}")
    assert status == 200, body
    reply = json.loads(body)
    assert reply["status"] == "success", reply
    return reply["data"]


# -- the build ------------------------------------------------------------------------


def test_script_pins_the_version_and_hits_its_cache(
    prometheus_image: BuiltImage, run_labels: dict[str, str]
) -> None:
    suite = os.environ.get("BEEPHOST_PROMETHEUS_SUITE", "trixie")
    assert prometheus_image.suite == suite
    pin = os.environ.get("BEEPHOST_PROMETHEUS_VERSION") or PINS[suite]
    assert (prometheus_image.version + ".").startswith(pin + "."), prometheus_image

    started = time.monotonic()
    report = run_script("--label", next(f"{k}={v}" for k, v in run_labels.items()))
    elapsed = time.monotonic() - started
    assert set(report) == {IMAGE, f"beephost/prometheus-debian:{suite}"}
    assert report[IMAGE]["built"] == "false"
    assert report[IMAGE]["id"] == prometheus_image.image_id
    assert report[IMAGE]["version"] == prometheus_image.version
    print(f"\nprometheus image cache hit in {elapsed:.2f} s")


def test_image_posture(docker_cli: str, prometheus_image: BuiltImage) -> None:
    data = inspect(docker_cli, prometheus_image.image_id, "image")
    config = data["Config"]
    labels = config["Labels"]
    assert config["User"] == "65534:65534"
    assert list(config["ExposedPorts"]) == ["9090/tcp"]
    assert list(config["Volumes"]) == ["/prometheus"]
    expected = (
        HEALTHCHECK_QUERY if prometheus_image.suite == "bookworm" else HEALTHCHECK
    )
    assert config["Healthcheck"]["Test"] == expected
    assert config["Entrypoint"] == ["/bin/prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in config["Cmd"]
    assert "--storage.tsdb.path=/prometheus" in config["Cmd"]
    assert labels["io.beephost.managed"] == "true"
    assert labels["io.beephost.kind"] == "prometheus-image"
    assert labels["io.beephost.prometheus.version"] == prometheus_image.version
    assert labels["org.opencontainers.image.title"] == "beephost/prometheus"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    base = labels["org.opencontainers.image.base.name"]
    assert base == f"beephost/prometheus-debian:{prometheus_image.suite}"
    base_labels = inspect(docker_cli, base, "image")["Config"]["Labels"]
    assert base_labels["io.beephost.kind"] == "prometheus-base-image"


# -- the shipped scrape config --------------------------------------------------------


def test_shipped_config_scrapes_every_compose_service() -> None:
    config = yaml.safe_load(SHIPPED_CONFIG.read_text())
    assert config["global"]["scrape_interval"] == "5s"
    assert config["global"]["evaluation_interval"] == "5s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    expected = {
        "controller": "controller:8600",
        "http-backend": "http-backend:5678",
        "pipe-backend": "pipe-backend:9464",
        "rpc-backend": "rpc-backend:9465",
        "prometheus": "localhost:9090",
    }
    assert {
        name: job["static_configs"][0]["targets"] for name, job in jobs.items()
    } == {name: [target] for name, target in expected.items()}
    for name, job in jobs.items():
        assert job["static_configs"][0]["labels"] == {"service": name}
        assert job.get("metrics_path", "/metrics") == "/metrics"
        if name != "http-backend":
            assert "authorization" not in job, name
    assert jobs["http-backend"]["authorization"] == {
        "type": "Bearer",
        "credentials_file": "/etc/prometheus/secrets/http-backend-token",
    }


def test_promtool_checks_the_shipped_config(
    docker_cli: str,
    prometheus_image: BuiltImage,
    run_labels: dict[str, str],
    tmp_path: Path,
) -> None:
    token = write_file(tmp_path / "token", "dummy-token\n")
    check = [
        "run", "--rm", "--network=none", "--read-only", *label_args(run_labels),
        "-v", f"{SHIPPED_CONFIG}:/etc/prometheus/prometheus.yml:ro",
    ]  # fmt: skip
    command = [
        "--entrypoint", "/bin/promtool", prometheus_image.image_id,
        "check", "config", "/etc/prometheus/prometheus.yml",
    ]  # fmt: skip
    mount = ["-v", f"{token}:/etc/prometheus/secrets/http-backend-token:ro"]
    output = docker(docker_cli, *check, *mount, *command, timeout=60)
    assert "SUCCESS" in output, output

    # Without the token file the check fails: the config really points at it.
    missing = run_captured([docker_cli, *check, *command], timeout=60)
    assert missing.returncode != 0
    assert "http-backend-token" in missing.stdout + missing.stderr


# -- a real scrape ---------------------------------------------------------------------


def test_scrapes_targets_on_a_user_defined_network(
    docker_cli: str,
    prometheus_image: BuiltImage,
    python_image: str,
    run_labels: dict[str, str],
    network: str,
    tmp_path: Path,
) -> None:
    config = write_file(tmp_path / "prometheus.yml", yaml.safe_dump(SCRAPE_CONFIG))
    token = write_file(tmp_path / "token", TARGET_TOKEN + "\n")
    server = write_file(tmp_path / "server.py", TARGET_SERVER)
    containers: list[str] = []
    try:
        containers.append(
            docker(
                docker_cli, "run", "-d", *label_args(run_labels),
                "--network", network, "--network-alias", "target",
                "--read-only", "--user", "65534:65534", "--cap-drop", "ALL",
                "-e", f"TARGET_TOKEN={TARGET_TOKEN}",
                "-v", f"{server}:/srv/server.py:ro",
                python_image, "python3", "-u", "/srv/server.py",
            ).strip()
        )  # fmt: skip
        started = time.monotonic()
        prometheus = docker(
            docker_cli, "run", "-d", *label_args(run_labels),
            "--network", network, "-p", "127.0.0.1::9090",
            "--read-only", "--tmpfs", "/prometheus:rw,uid=65534,gid=65534,mode=0700",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "-v", f"{config}:/etc/prometheus/prometheus.yml:ro",
            "-v", f"{token}:/etc/prometheus/secrets/target-token:ro",
            prometheus_image.image_id,
        ).strip()  # fmt: skip
        containers.append(prometheus)
        ports = inspect(docker_cli, prometheus)["NetworkSettings"]["Ports"]
        port = int(ports["9090/tcp"][0]["HostPort"])

        targets: list[dict[str, Any]] = []
        while time.monotonic() - started < SCRAPE_TIMEOUT:
            try:
                targets = api(port, "targets", state="active")["activeTargets"]
            except OSError:
                targets = []  # not listening yet
            if len(targets) == 2 and all(t["health"] == "up" for t in targets):
                break
            time.sleep(0.5)
        scraped_after = time.monotonic() - started
        summary = [(t["labels"]["job"], t["health"], t["lastError"]) for t in targets]
        assert len(targets) == 2, summary
        assert all(t["health"] == "up" for t in targets), summary
        assert {t["labels"]["service"] for t in targets} == {"prometheus", "target"}
        print(f"\nboth targets up {scraped_after:.1f} s after docker run")

        up = api(port, "query", query="up")["result"]
        assert {r["metric"]["job"]: r["value"][1] for r in up} == {
            "prometheus": "1",
            "target": "1",
        }
        answer = api(port, "query", query="beephost_test_answer")["result"]
        assert [r["value"][1] for r in answer] == ["42"]

        healthy_after = wait_healthy(docker_cli, prometheus, timeout=30)
        print(f"healthy {healthy_after:.1f} s after the first poll")
        state = inspect(docker_cli, prometheus)
        assert state["HostConfig"]["ReadonlyRootfs"] is True
        assert state["Config"]["User"] == "65534:65534"
        uids = docker(docker_cli, "top", prometheus, "-o", "pid,uid,args")
        rows = [line.split(None, 2) for line in uids.splitlines()[1:]]
        assert rows, uids
        assert all(uid == "65534" for _, uid, _ in rows), uids
    finally:
        for container in containers:
            remove_container(docker_cli, container)
    filters = [f"label={key}={value}" for key, value in run_labels.items()]
    leftover = docker(docker_cli, "ps", "-aq", "--filter", filters[0])
    assert leftover.strip() == "", "containers left after cleanup"


def test_exposition_text_passes_promtool(
    docker_cli: str, prometheus_image: BuiltImage, run_labels: dict[str, str]
) -> None:
    result = run_captured(
        [docker_cli, "run", "--rm", "-i", "--network=none", *label_args(run_labels),
         "--entrypoint", "/bin/promtool", prometheus_image.image_id,
         "check", "metrics"],
        timeout=60, stdin=METRICS_TEXT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
