"""The README's up command on the real engine: compose brings the system up healthy;
the CLI drives the controller inside it; every transport answers from the host;
the backend containers hold only their tokens' digests, which scripts/up recomputes
when a token changes; Prometheus scrapes every service; `down -v` leaves nothing.

The project runs under a unique compose project name, on free loopback ports, with
its own .env, secrets and socket directories: a system a developer runs with the
default names is left alone. Images are the product's own (scripts/up builds them,
as it does for users) and stay in the engine.
"""

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from beephost_client import Unauthorized, connect
from tests.e2e.conftest import unavailable
from tests.e2e.containers import docker, free_port

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
PROJECT_LABEL = "com.docker.compose.project"
#: Compose service -> the <TYPE> of its variables.
BACKENDS = {"pipe-backend": "PIPE", "http-backend": "HTTP", "rpc-backend": "RPC"}


@dataclass
class Compose:
    env: dict[str, str]
    project: str
    tokens: dict[str, str]
    #: The environment scripts/up runs in (a plain shell's, not the venv's).
    up_env: dict[str, str]

    @property
    def env_file(self) -> Path:
        return Path(self.env["BEEPHOST_ENV_FILE"])

    def up(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(REPO / "scripts" / "up")],
            cwd=REPO,
            env=self.up_env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )

    def port(self, name: str) -> int:
        return int(self.env[f"BEEPHOST_{name}_PORT"])

    def run(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            ["docker", "compose", "--env-file", self.env["BEEPHOST_ENV_FILE"], *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    def cli(self, *args: str) -> Any:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "beephost_cli",
                "--controller",
                f"http://127.0.0.1:{self.port('CONTROLLER')}",
                "--token",
                self.tokens["CONTROLLER"],
                *args,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("BEEPHOST_"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def _tokens(path: Path) -> dict[str, str]:
    """<TYPE> -> token, from the env file's BEEPHOST_<TYPE>_TOKEN lines."""
    return {
        key.removeprefix("BEEPHOST_").removesuffix("_TOKEN"): value
        for key, value in _env_file_values(path).items()
        if key.endswith("_TOKEN")
    }


def _container_env(compose: "Compose", docker_cli: str, service: str) -> dict[str, str]:
    """The environment a service's container was created with (Config.Env)."""
    (container_id,) = compose.run("ps", "-q", service).split()
    info = json.loads(docker(docker_cli, "inspect", container_id))[0]
    env = {}
    for item in info["Config"]["Env"]:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # loopback only
        return json.loads(response.read())


@pytest.fixture(scope="module")
def compose(docker_cli: str) -> Iterator[Compose]:
    if subprocess.run(
        ["docker", "compose", "version"], capture_output=True, check=False
    ).returncode:
        unavailable("docker compose v2 is missing (scripts/bootstrap installs it)")
    work = Path(tempfile.mkdtemp(prefix="bh-compose-", dir="/tmp"))
    project = f"beephost-e2e-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": project,
        "COMPOSE_PROFILES": "monitoring",
        "BEEPHOST_ENV_FILE": str(work / ".env"),
        "BEEPHOST_SECRETS_DIR": str(work / "secrets"),
        "BEEPHOST_SOCKET_ROOT": str(work / "sockets"),
        "BEEPHOST_CONTROLLER_NAME": project,
        **{
            f"BEEPHOST_{name}_PORT": str(free_port())
            for name in ("CONTROLLER", "HTTP", "RPC", "PROMETHEUS")
        },
    }
    # As a user runs it: from a plain shell, not from inside the project's venv
    # (`uv run pytest` puts the venv first on PATH; bootstrap wants the system python).
    venv_bin = str(Path(sys.prefix) / "bin")
    plain = {
        k: v
        for k, v in env.items()
        if k not in ("VIRTUAL_ENV", "UV_RUN_RECURSION_DEPTH")
    }
    plain["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin
    )
    handle = Compose(env, project, {}, plain)
    env_file = handle.env_file
    up = handle.up()
    if env_file.exists():
        handle.tokens.update(_tokens(env_file))
    try:
        assert up.returncode == 0, f"scripts/up failed:\n{up.stderr[-5000:]}"
        assert "shown this once" in up.stderr, "the generated tokens are shown once"
        yield handle
    finally:
        subprocess.run(
            ["docker", "compose", "--env-file", str(env_file), "down", "-v"],
            cwd=REPO,
            env=env,
            capture_output=True,
            timeout=300,
            check=False,
        )
        shutil.rmtree(work, ignore_errors=True)


def test_every_service_is_healthy_and_hardened(
    compose: Compose, docker_cli: str
) -> None:
    lines = compose.run("ps", "--format", "json").strip().splitlines()
    services = [json.loads(line) for line in lines if line.strip()]
    if len(services) == 1 and isinstance(services[0], list):  # older compose: one array
        services = services[0]
    by_name = {s["Service"]: s for s in services}
    assert set(by_name) == {
        "controller",
        "pipe-backend",
        "http-backend",
        "rpc-backend",
        "prometheus",
    }
    for name, service in by_name.items():
        assert service["Health"] == "healthy", (name, service)
        info = json.loads(docker(docker_cli, "inspect", service["ID"]))[0]
        host = info["HostConfig"]
        assert host["ReadonlyRootfs"] is True, name
        assert host["CapDrop"] == ["ALL"], name
        assert info["Config"]["User"] not in ("", "0", "root"), name
        for bindings in (host.get("PortBindings") or {}).values():
            assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}, name
        binds = " ".join(host.get("Binds") or [])
        assert ("docker.sock" in binds) == (name == "controller"), name


def test_the_default_backends_answer_from_the_host(
    compose: Compose, docker_cli: str
) -> None:
    volume = f"{compose.project}_pipe-socket"
    mountpoint = json.loads(docker(docker_cli, "volume", "inspect", volume))[0][
        "Mountpoint"
    ]
    urls = {
        "PIPE": f"unix://{mountpoint}/pipe.sock",
        "HTTP": f"http://127.0.0.1:{compose.port('HTTP')}",
        "RPC": f"grpc://127.0.0.1:{compose.port('RPC')}",
    }
    for name, url in urls.items():
        with connect(url, token=compose.tokens[name]) as client:
            assert client.evaluate("sum(range(10))") == 45, name
            assert client.info().environment == "default", name
        # What the container's environment holds is no token.
        with (
            pytest.raises(Unauthorized),
            connect(url, token=_sha256(compose.tokens[name])) as client,
        ):
            client.evaluate("1")


def test_backends_hold_only_their_token_digest(
    compose: Compose, docker_cli: str
) -> None:
    assert compose.env_file.stat().st_mode & 0o777 == 0o600
    written = _env_file_values(compose.env_file)
    assert set(compose.tokens) == {"CONTROLLER", "PIPE", "HTTP", "RPC"}
    for service, kind in BACKENDS.items():
        digest = _sha256(compose.tokens[kind])
        assert written[f"BEEPHOST_{kind}_TOKEN_SHA256"] == digest, kind
        env = _container_env(compose, docker_cli, service)
        assert env[f"BEEPHOST_{kind}_BACKEND_TOKEN_SHA256"] == digest, service
        assert f"BEEPHOST_{kind}_BACKEND_TOKEN" not in env, service
        leaked = [
            key
            for key, value in env.items()
            if any(token in value for token in compose.tokens.values())
        ]
        assert leaked == [], (service, leaked)
    # The controller checks its own token: it keeps it.
    controller = _container_env(compose, docker_cli, "controller")
    assert controller["BEEPHOST_CONTROLLER_TOKEN"] == compose.tokens["CONTROLLER"]


def test_cli_drives_the_controller_inside_compose(compose: Compose) -> None:
    created = compose.cli("venv", "create", "smoke", "six==1.17.0")
    assert created["status"] == "ready", created
    started = []
    try:
        for kind in ("pipe", "http", "rpc"):
            backend = compose.cli("start", kind, "--venv", "smoke")
            assert backend["status"] == "ready", backend
            started.append(backend["id"])
            value = compose.cli(
                "eval", "-b", backend["id"], "__import__('six').__version__"
            )
            assert value == {"value": "1.17.0"}, value
    finally:
        if started:
            compose.cli("stop", *started)


def test_prometheus_scrapes_every_service(compose: Compose) -> None:
    base = f"http://127.0.0.1:{compose.port('PROMETHEUS')}"
    jobs = {"controller", "pipe-backend", "http-backend", "rpc-backend"}
    deadline = time.monotonic() + 60
    while True:
        targets = _get_json(f"{base}/api/v1/targets")["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        if all(health.get(job) == "up" for job in jobs):
            break
        assert time.monotonic() < deadline, f"targets not all up: {targets}"
        time.sleep(1)
    query = urllib.parse.quote("up")
    up = _get_json(f"{base}/api/v1/query?query={query}")["data"]["result"]
    values = {r["metric"]["job"]: r["value"][1] for r in up}
    assert all(values.get(job) == "1" for job in jobs), values
    metric = urllib.parse.quote('count by (job) ({__name__=~"beephost_.+"})')
    counted = _get_json(f"{base}/api/v1/query?query={metric}")["data"]["result"]
    with_samples = {r["metric"]["job"] for r in counted if float(r["value"][1]) > 0}
    assert jobs <= with_samples, with_samples


def test_scripts_up_follows_a_rotated_token(compose: Compose, docker_cli: str) -> None:
    # Rotate the gRPC backend's token in .env (its metrics port needs no token, so
    # Prometheus is unaffected) and run scripts/up again: a fresh digest, a new container.
    old = compose.tokens["RPC"]
    new = secrets.token_urlsafe(32)
    text = compose.env_file.read_text()
    assert text.count(f"BEEPHOST_RPC_TOKEN={old}\n") == 1
    compose.env_file.write_text(
        text.replace(f"BEEPHOST_RPC_TOKEN={old}\n", f"BEEPHOST_RPC_TOKEN={new}\n")
    )
    up = compose.up()
    assert up.returncode == 0, f"scripts/up failed:\n{up.stderr[-5000:]}"
    assert "shown this once" not in up.stderr, "tokens are shown only when generated"
    compose.tokens["RPC"] = new
    assert _tokens(compose.env_file) == compose.tokens
    written = _env_file_values(compose.env_file)
    assert written["BEEPHOST_RPC_TOKEN_SHA256"] == _sha256(new)
    for kind in ("PIPE", "HTTP"):
        assert written[f"BEEPHOST_{kind}_TOKEN_SHA256"] == _sha256(compose.tokens[kind])
    env = _container_env(compose, docker_cli, "rpc-backend")
    assert env["BEEPHOST_RPC_BACKEND_TOKEN_SHA256"] == _sha256(new)
    url = f"grpc://127.0.0.1:{compose.port('RPC')}"
    with connect(url, token=new) as client:
        assert client.evaluate("6 * 7") == 42
    with pytest.raises(Unauthorized), connect(url, token=old) as client:
        client.evaluate("1")


def test_down_leaves_nothing(compose: Compose, docker_cli: str) -> None:
    # Last in the module: the controller removes the backends it started on shutdown.
    started = compose.cli("start", "http", "--venv", "smoke")
    assert started["status"] == "ready"
    compose.run("down", "-v", timeout=300)
    label = f"label={PROJECT_LABEL}={compose.project}"
    assert docker(docker_cli, "ps", "-aq", "--filter", label).split() == []
    assert docker(docker_cli, "volume", "ls", "-q", "--filter", label).split() == []
    owned = f"label=io.beephost.controller={compose.project}"
    assert docker(docker_cli, "ps", "-aq", "--filter", owned).split() == []
    assert docker(docker_cli, "network", "ls", "-q", "--filter", owned).split() == []
