"""Helpers for end-to-end tests of the backend images: a workspace snapshot, hardened
``docker run``, health polling, and one minimal client per transport.

Everything a test starts carries the run's unique label; cleanup goes by that label
(``DockerEngine.remove_by_labels``), never by name, and never prunes.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from tests.e2e.processes import run_captured

#: What every backend container is run with: the production posture.
HARDENING = (
    "--read-only",
    "--tmpfs",
    "/tmp:rw,nosuid,nodev,size=64m",
    # The controller mounts a volume there; a tmpfs stands in for it here.
    "--tmpfs",
    "/workspace:rw,nosuid,nodev,size=64m,uid=10001,gid=10001,mode=0700",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--user",
    "10001:10001",
    "--pids-limit",
    "256",
    "--memory",
    "512m",
)
#: Ports the images serve on inside the container.
CONTAINER_PORTS = {"http": 5678, "rpc": 50051}
#: Code run through each transport: what user code can see of the server's packages.
ISOLATION_PROBE = """\
import importlib.util, subprocess, sys
found = [m for m in ("fastapi", "grpc", "pydantic", "uvicorn", "beephost_core")
         if importlib.util.find_spec(m) is not None]
leak = subprocess.run(["python3", "-c", "import pydantic"], capture_output=True)
print(sys.executable, found, leak.returncode != 0)
"""
ISOLATED = "/usr/bin/python3 [] True"


def host_addresses() -> list[str]:
    """Every IPv4 address of this host's interfaces but loopback: its own, and each
    bridge's gateway (docker0, compose's, a controller's offline bridge)."""
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    found = [line.split()[3].split("/")[0] for line in out.splitlines()]
    return [address for address in found if not address.startswith("127.")]


def label_args(labels: Mapping[str, str]) -> list[str]:
    return [
        arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")
    ]


def one_off_run(labels: Mapping[str, str], *args: str) -> list[str]:
    """``docker run`` arguments of a hardened container without network, removed when
    it exits, carrying ``labels``; ``args`` follow (options, the image, its command)."""
    return ["run", "--rm", "--network=none", *label_args(labels), *HARDENING, *args]


def docker(
    docker_cli: str,
    *args: str,
    timeout: float = 120,
    check: bool = True,
    stdin: str | None = None,
) -> str:
    """Run the docker CLI; return stdout, or fail the test with stderr."""
    result = run_captured([docker_cli, *args], timeout=timeout, stdin=stdin)
    if check and result.returncode != 0:
        pytest.fail(
            f"docker {' '.join(args[:3])}... exited {result.returncode}:\n"
            f"{result.stderr.strip()[-3000:]}",
            pytrace=False,
        )
    return result.stdout


@contextmanager
def labelled_object(
    docker_cli: str,
    kind: Literal["volume", "network"],
    prefix: str,
    labels: Mapping[str, str],
) -> Iterator[str]:
    """A new volume or network named ``<prefix>-<random>``, carrying ``labels``, for
    the block; removed afterwards (a failed removal is left to the cleanup by label)."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    docker(docker_cli, kind, "create", *label_args(labels), name)
    try:
        yield name
    finally:
        # `volume rm -f` ignores a volume already gone; `network rm` has no -f before
        # Docker 24.
        force = ["-f"] if kind == "volume" else []
        docker(docker_cli, kind, "rm", *force, name, check=False)


def inspect(docker_cli: str, ref: str, kind: str = "container") -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(docker(docker_cli, kind, "inspect", ref))
    return data[0]


@dataclass
class RunningBackend:
    """A backend container the tests talk to."""

    kind: str
    container: str
    url: str
    token: str
    healthy_after: float
    socket_dir: Path | None = None
    ports: dict[int, int] = field(default_factory=dict)


def wait_healthy(docker_cli: str, container: str, timeout: float = 60.0) -> float:
    """Poll ``State.Health.Status`` until healthy; seconds since the container started.

    Fails the test (with the container's logs) if it turns unhealthy or exits.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        state = inspect(docker_cli, container)["State"]
        health = (state.get("Health") or {}).get("Status")
        if health == "healthy":
            return time.monotonic() - started
        if health == "unhealthy" or state.get("Status") in ("exited", "dead"):
            break
        time.sleep(0.2)
    logs = run_captured([docker_cli, "logs", "--tail", "40", container], timeout=30)
    pytest.fail(
        f"{container[:12]} is not healthy after {time.monotonic() - started:.1f} s: "
        f"{json.dumps(state.get('Health'))[-1500:]}\n{logs.stdout}{logs.stderr}",
        pytrace=False,
    )


@contextmanager
def socket_directory() -> Iterator[tuple[Path, list[str]]]:
    """A host directory for the pipe socket, and the ``docker run`` args it needs.

    As root: owned by the image's user (10001), mode 0770, like the image's own
    /run/beephost. Otherwise: setgid and group-owned by our group, which the container
    user joins, so the socket (mode 0660) gets our group and we can connect.
    """
    # Short (sun_path is 108 bytes) and distinctive (other suites clean /tmp/bh*).
    path = Path(tempfile.mkdtemp(prefix="beephost-e2e-sock-", dir="/tmp"))
    try:
        if os.geteuid() == 0:
            os.chown(path, 10001, 10001)
            path.chmod(0o770)
            yield path, []
        else:
            path.chmod(0o2770)
            yield path, ["--group-add", str(os.getegid())]
    finally:
        shutil.rmtree(path, ignore_errors=True)


def healthcheck_command(kind: str) -> list[str]:
    """The image's own HEALTHCHECK command."""
    return [f"/opt/beephost/bin/beephost-{kind}-backend", "healthcheck"]


def wait_ready(
    docker_cli: str, container: str, kind: str, timeout: float = 30.0
) -> float:
    """Run the image's healthcheck command in the container until it passes.

    Faster than waiting for Docker's HEALTHCHECK, whose first probe comes one
    interval (5 s) after a start; same command, so the same verdict.
    """
    started = time.monotonic()
    last = ""
    while time.monotonic() - started < timeout:
        result = run_captured(
            [docker_cli, "exec", container, *healthcheck_command(kind)], timeout=30
        )
        if result.returncode == 0:
            return time.monotonic() - started
        last = (result.stdout + result.stderr).strip()
        time.sleep(0.2)
    pytest.fail(f"{kind} backend {container[:12]} not ready: {last}", pytrace=False)


def start_backend(
    docker_cli: str,
    kind: str,
    image: str,
    labels: Mapping[str, str],
    *,
    socket_dir: tuple[Path, list[str]] | None = None,
    token: str | None = None,
    env: Mapping[str, object] | None = None,
    host_port: int | None = None,
    wait: str = "healthy",
) -> RunningBackend:
    """Run a backend hardened and wait until it serves.

    http and rpc publish their port on 127.0.0.1 only (``host_port``, or one the engine
    picks); pipe bind-mounts ``socket_dir`` on /run/beephost. ``env`` holds settings
    without their ``BEEPHOST_<KIND>_BACKEND_`` prefix. ``wait="healthy"`` waits for
    Docker's HEALTHCHECK verdict, ``"ready"`` runs the same command directly.
    """
    secret = token or secrets.token_urlsafe(24)
    prefix = f"BEEPHOST_{kind.upper()}_BACKEND_"
    settings = {"TOKEN": secret, **(env or {})}
    args = ["run", "-d", *label_args(labels), *HARDENING]
    for name, value in settings.items():
        args += ["-e", f"{prefix}{name}={value}"]
    if kind in CONTAINER_PORTS:
        published = "" if host_port is None else str(host_port)
        args += ["-p", f"127.0.0.1:{published}:{CONTAINER_PORTS[kind]}"]
    if socket_dir is not None:
        directory, run_args = socket_dir
        args += ["-v", f"{directory}:/run/beephost", *run_args]
    container = docker(docker_cli, *args, image).strip()
    if wait == "healthy":
        healthy_after = wait_healthy(docker_cli, container)
    else:
        healthy_after = wait_ready(docker_cli, container, kind)
    ports: dict[int, int] = {}
    bindings = inspect(docker_cli, container)["NetworkSettings"]["Ports"] or {}
    for spec, hosts in bindings.items():
        for host in hosts or ():
            assert host["HostIp"] == "127.0.0.1", f"{spec} published on {host}"
            ports[int(spec.split("/")[0])] = int(host["HostPort"])
    if kind == "pipe":
        assert socket_dir is not None
        url = f"unix://{socket_dir[0] / 'pipe.sock'}"
    else:
        scheme = "http" if kind == "http" else "grpc"
        url = f"{scheme}://127.0.0.1:{ports[CONTAINER_PORTS[kind]]}"
    return RunningBackend(
        kind=kind,
        container=container,
        url=url,
        token=secret,
        healthy_after=healthy_after,
        socket_dir=socket_dir[0] if socket_dir else None,
        ports=ports,
    )


def remove_container(docker_cli: str, container: str) -> None:
    """``docker rm -f -v``: the container and its anonymous volumes, nothing else."""
    subprocess.run(
        [docker_cli, "rm", "-f", "-v", container],
        capture_output=True,
        timeout=60,
        check=False,
    )


def kill_main_process(docker_cli: str, container: str) -> None:
    """SIGKILL to the container's main process from the host: to Docker a crash, which
    its restart policy restarts (unlike ``docker kill``, which it treats as deliberate)."""
    os.kill(inspect(docker_cli, container)["State"]["Pid"], signal.SIGKILL)


def memory_usage(docker_cli: str, container: str) -> str:
    """``docker stats --no-stream`` memory column, e.g. ``64.2MiB / 512MiB``."""
    return docker(
        docker_cli, "stats", "--no-stream", "--format", "{{.MemUsage}}", container
    ).strip()


# -- one minimal client per transport: run code, get its stdout ----------------------


def pipe_exec(path: Path, token: str, code: str, timeout: float = 30.0) -> str:
    """``hello`` then ``exec`` over the pipe protocol's NDJSON; returns stdout."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        frames = [
            {"id": 1, "type": "hello", "params": {"token": token}},
            {"id": 2, "type": "exec", "params": {"code": code}},
        ]
        sock.sendall(b"".join(json.dumps(f).encode() + b"\n" for f in frames))
        replies: dict[int, dict[str, Any]] = {}
        with sock.makefile("rb") as reader:
            while 2 not in replies:
                line = reader.readline()
                assert line, "the pipe server closed the connection"
                reply = json.loads(line)
                if "id" in reply and "event" not in reply:
                    replies[reply["id"]] = reply
    assert "result" in replies[1], replies[1]
    assert "result" in replies[2], replies[2]
    return str(replies[2]["result"]["stdout"])


def _loopback_opener() -> urllib.request.OpenerDirector:
    # Bypass any HTTP(S)_PROXY of the environment: this is loopback.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    with _loopback_opener().open(url, timeout=timeout) as response:
        return int(response.status), response.read()


def http_exec(base_url: str, token: str, code: str, timeout: float = 30.0) -> str:
    """POST /api/exec with the bearer token; returns stdout."""
    request = urllib.request.Request(
        f"{base_url}/api/exec",
        data=json.dumps({"code": code}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
        },
        method="POST",
    )
    with _loopback_opener().open(request, timeout=timeout) as response:
        return str(json.loads(response.read())["stdout"])


def grpc_exec(target: str, token: str, code: str, timeout: float = 30.0) -> str:
    """``Executor.Execute`` with the bearer token in metadata; returns stdout."""
    import grpc

    from beephost_pb.exec.v1 import exec_pb2, exec_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = exec_pb2_grpc.ExecutorStub(channel)
        reply = stub.Execute(
            exec_pb2.ExecuteRequest(code=code),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=timeout,
        )
    return str(reply.stdout)


def grpc_health(target: str, timeout: float = 10.0) -> str:
    """The standard health service's overall status, e.g. ``SERVING``."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=timeout
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def run_code(backend: RunningBackend, code: str) -> str:
    """Run ``code`` through ``backend``'s own transport; return its stdout."""
    if backend.kind == "pipe":
        assert backend.socket_dir is not None
        return pipe_exec(backend.socket_dir / "pipe.sock", backend.token, code)
    if backend.kind == "http":
        return http_exec(backend.url, backend.token, code)
    return grpc_exec(backend.url.removeprefix("grpc://"), backend.token, code)
