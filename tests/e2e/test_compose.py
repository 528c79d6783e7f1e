"""The README's up command on the real engine: compose brings the system up healthy;
the CLI drives the controller inside it; every transport answers from the host;
the backend containers hold only their tokens' digests, which scripts/up recomputes
when a token changes; Prometheus scrapes every service; `down -v` leaves nothing.

A backend the controller inside compose started keeps its URL and token across
restarts (Docker's and the controller's). The system: tests/e2e/compose_system.py.
"""

import json
import os
import secrets
import signal
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from beephost_client import Client, ExecutionTimeout, Unauthorized, connect
from tests.e2e.compose_system import (
    BACKENDS,
    PROJECT_LABEL,
    Compose,
    compose_system,
    env_file_values,
    sha256,
    tokens_of,
)
from tests.e2e.containers import docker, inspect

pytestmark = pytest.mark.docker


def _container_env(compose: Compose, docker_cli: str, service: str) -> dict[str, str]:
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
    with compose_system("beephost-e2e", profiles="monitoring") as system:
        yield system


@pytest.fixture(scope="module")
def smoke(compose: Compose) -> str:
    """An environment with a real PyPI requirement, built once for the module."""
    created = compose.cli("venv", "create", "smoke", "six==1.17.0", "--exist-ok")
    assert created["status"] == "ready", created
    return "smoke"


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


def _default_backend_urls(compose: Compose, docker_cli: str) -> dict[str, str]:
    """Where the host reaches each default backend, by its token's name."""
    volume = f"{compose.project}_pipe-socket"
    mountpoint = json.loads(docker(docker_cli, "volume", "inspect", volume))[0][
        "Mountpoint"
    ]
    return {
        "PIPE": f"unix://{mountpoint}/pipe.sock",
        "HTTP": f"http://127.0.0.1:{compose.port('HTTP')}",
        "RPC": f"grpc://127.0.0.1:{compose.port('RPC')}",
    }


def test_the_default_backends_answer_from_the_host(
    compose: Compose, docker_cli: str
) -> None:
    for name, url in _default_backend_urls(compose, docker_cli).items():
        with connect(url, token=compose.tokens[name]) as client:
            assert client.evaluate("sum(range(10))") == 45, name
            assert client.info().environment == "default", name
        # What the container's environment holds is no token.
        with (
            pytest.raises(Unauthorized),
            connect(url, token=sha256(compose.tokens[name])) as client,
        ):
            client.evaluate("1")


def _hold_the_session(seconds: float) -> tuple[str, str]:
    """Code that marks in the workspace that it runs (a file: the files API answers
    from the server, not the busy worker), then holds the session ``seconds``."""
    marker = f"holding-{secrets.token_hex(4)}"
    return f"import time\nopen({marker!r}, 'w').close()\ntime.sleep({seconds})", marker


def _wait_for_file(client: Client, path: str) -> None:
    deadline = time.monotonic() + 30
    while not client.files.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    client.files.remove(path)


def test_clients_queued_in_one_session_are_each_answered_in_turn(
    compose: Compose, docker_cli: str
) -> None:
    """12 clients at once in the default session of each backend, queued behind a
    request that holds its worker: each runs once, one at a time, on the session's
    state (the session hand-off, in the containers compose runs); one whose deadline
    passes while it waits times out with the state kept."""
    seen = f"seen_{secrets.token_hex(4)}"
    for name, url in _default_backend_urls(compose, docker_cli).items():
        token = compose.tokens[name]

        def append(n: int, url: str = url, token: str = token) -> Any:
            with connect(url, token=token) as client:
                return client.evaluate(f"{seen}.append({n}) or len({seen})")

        with (
            connect(url, token=token) as holder,
            connect(url, token=token) as watcher,
            ThreadPoolExecutor(13) as pool,
        ):
            holder.execute(f"{seen} = []")
            code, marker = _hold_the_session(0.5)
            busy = pool.submit(holder.execute, code)
            _wait_for_file(watcher, marker)
            answers = list(pool.map(append, range(12)))
            busy.result()
            assert sorted(answers) == list(range(1, 13)), name
            assert sorted(holder.evaluate(seen)) == list(range(12)), name
            code, marker = _hold_the_session(2)
            busy = pool.submit(holder.execute, code)
            _wait_for_file(watcher, marker)
            with pytest.raises(ExecutionTimeout) as caught:
                watcher.evaluate(f"{seen}.append(-1)", timeout=0.3)
            busy.result()
            assert caught.value.data.get("state_lost") is False, name
            assert sorted(holder.evaluate(seen)) == list(range(12)), name


def test_backends_hold_only_their_token_digest(
    compose: Compose, docker_cli: str
) -> None:
    assert compose.env_file.stat().st_mode & 0o777 == 0o600
    written = env_file_values(compose.env_file)
    # The MCP server's token too (generated with the others, used with profile mcp).
    assert set(compose.tokens) == {"CONTROLLER", "PIPE", "HTTP", "RPC", "MCP"}
    for service, kind in BACKENDS.items():
        digest = sha256(compose.tokens[kind])
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


def test_cli_drives_the_controller_inside_compose(compose: Compose, smoke: str) -> None:
    started = []
    try:
        for kind in ("pipe", "http", "rpc"):
            backend = compose.cli("start", kind, "--venv", smoke)
            assert backend["status"] == "ready", backend
            started.append(backend["id"])
            value = compose.cli(
                "eval", "-b", backend["id"], "__import__('six').__version__"
            )
            assert value == {"value": "1.17.0"}, value
    finally:
        if started:
            compose.cli("stop", *started)


def _restarted(compose: Compose, backend_id: str, restarts: int) -> Any:
    deadline = time.monotonic() + 90
    while True:
        now = compose.cli("status", backend_id)
        if now["status"] == "ready" and now["restarts"] >= restarts:
            return now
        assert time.monotonic() < deadline, f"not restarted: {now}"
        time.sleep(0.5)


def test_a_restarted_backend_keeps_the_url_and_token_start_printed(
    compose: Compose, docker_cli: str, smoke: str
) -> None:
    for kind in ("http", "rpc"):
        started = compose.cli("start", kind, "--venv", smoke)
        try:
            url, token = started["endpoint"], started["token"]
            # The controller's restart: Docker's policy leaves a `docker kill` alone.
            docker(docker_cli, "kill", started["container_id"])
            assert _restarted(compose, started["id"], 1)["endpoint"] == url, kind
            # Docker's restart, after the server process crashed.
            pid = inspect(docker_cli, started["container_id"])["State"]["Pid"]
            os.kill(pid, signal.SIGKILL)
            assert _restarted(compose, started["id"], 2)["endpoint"] == url, kind
            with connect(url, token=token) as client:
                assert client.evaluate("6 * 7") == 42, kind
        finally:
            compose.cli("stop", started["id"])


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
    assert tokens_of(compose.env_file) == compose.tokens
    written = env_file_values(compose.env_file)
    assert written["BEEPHOST_RPC_TOKEN_SHA256"] == sha256(new)
    for kind in ("PIPE", "HTTP"):
        assert written[f"BEEPHOST_{kind}_TOKEN_SHA256"] == sha256(compose.tokens[kind])
    env = _container_env(compose, docker_cli, "rpc-backend")
    assert env["BEEPHOST_RPC_BACKEND_TOKEN_SHA256"] == sha256(new)
    url = f"grpc://127.0.0.1:{compose.port('RPC')}"
    with connect(url, token=new) as client:
        assert client.evaluate("6 * 7") == 42
    with pytest.raises(Unauthorized), connect(url, token=old) as client:
        client.evaluate("1")


def test_down_leaves_nothing(compose: Compose, docker_cli: str, smoke: str) -> None:
    # Last in the module: the controller removes the backends it started on shutdown.
    started = compose.cli("start", "http", "--venv", smoke)
    assert started["status"] == "ready"
    compose.run("down", "-v", timeout=300)
    label = f"label={PROJECT_LABEL}={compose.project}"
    assert docker(docker_cli, "ps", "-aq", "--filter", label).split() == []
    assert docker(docker_cli, "volume", "ls", "-q", "--filter", label).split() == []
    owned = f"label=io.beephost.controller={compose.project}"
    assert docker(docker_cli, "ps", "-aq", "--filter", owned).split() == []
    assert docker(docker_cli, "network", "ls", "-q", "--filter", owned).split() == []
