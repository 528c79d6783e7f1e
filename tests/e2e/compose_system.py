"""The compose system as the README brings it up (``scripts/up``), for e2e tests.

Each system runs under a unique compose project name, on free loopback ports, with its
own .env, secrets and socket directories: a system a developer runs with the default
names and ports is left alone. Images are the product's own (scripts/up builds them,
as it does for users; a second system in the session finds them built) and stay in the
engine. ``compose_system()`` brings one up and takes it down with ``down -v``, which
removes what compose and its controller created (both carry the project's name).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beephost_client.controller import ControllerClient
from tests.e2e.containers import docker
from tests.e2e.controller_process import owned_by
from tests.e2e.processes import run_captured
from tests.e2e.session_fixtures import unavailable
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
PROJECT_LABEL = "com.docker.compose.project"
#: On what a controller builds: its name (compose_system names it after the project).
OWNER_LABEL = "io.beephost.image.owner"
#: Compose service -> the <TYPE> of its variables.
BACKENDS = {"pipe-backend": "PIPE", "http-backend": "HTTP", "rpc-backend": "RPC"}


@dataclass
class Compose:
    env: dict[str, str]
    project: str
    tokens: dict[str, str]
    #: The environment scripts/up runs in (a plain shell's, not the venv's).
    up_env: dict[str, str]
    #: What the first scripts/up wrote on stderr (where each service is).
    up_log: str = ""

    @property
    def env_file(self) -> Path:
        return Path(self.env["BEEPHOST_ENV_FILE"])

    def up(self) -> subprocess.CompletedProcess[str]:
        return run_captured(
            [str(REPO / "scripts" / "up")], timeout=1800, env=self.up_env, cwd=REPO
        )

    def port(self, name: str) -> int:
        return int(self.env[f"BEEPHOST_{name}_PORT"])

    def url(self, name: str) -> str:
        """The host URL of the controller (CONTROLLER), a default backend, or the
        MCP server's endpoint (MCP, profile mcp)."""
        if name == "PIPE":
            return f"unix://{self.pipe_socket()}"
        if name == "MCP":
            return f"http://127.0.0.1:{self.port(name)}/mcp"
        scheme = "grpc" if name == "RPC" else "http"
        return f"{scheme}://127.0.0.1:{self.port(name)}"

    def pipe_socket(self) -> str:
        """The pipe backend's socket on the host (inside its named volume)."""
        volume = f"{self.project}_pipe-socket"
        info = docker("docker", "volume", "inspect", volume)
        return f"{json.loads(info)[0]['Mountpoint']}/pipe.sock"

    def run(self, *args: str, timeout: float = 300) -> str:
        result = run_captured(
            ["docker", "compose", "--env-file", self.env["BEEPHOST_ENV_FILE"], *args],
            timeout=timeout,
            env=self.env,
            cwd=REPO,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    def cli(self, *args: str) -> Any:
        result = run_captured(
            [
                sys.executable,
                "-m",
                "beephost_cli",
                "--controller",
                self.url("CONTROLLER"),
                "--token",
                self.tokens["CONTROLLER"],
                *args,
                "--json",
            ],
            timeout=900,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout)


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("BEEPHOST_"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def tokens_of(path: Path) -> dict[str, str]:
    """<TYPE> -> token, from the env file's BEEPHOST_<TYPE>_TOKEN lines."""
    return {
        key.removeprefix("BEEPHOST_").removesuffix("_TOKEN"): value
        for key, value in env_file_values(path).items()
        if key.endswith("_TOKEN")
    }


@contextmanager
def compose_system(
    prefix: str,
    *,
    profiles: str = "",
    settings: Callable[[Path], Mapping[str, str]] | None = None,
) -> Iterator[Compose]:
    """A compose system brought up by scripts/up; ``down -v`` afterwards.

    Args:
        settings: Given its socket root (made, empty; the controller's container sees
            it at the same path), more ``BEEPHOST_*`` variables for compose (they win
            over its .env, as scripts/up says); it may put files there.
    """
    if subprocess.run(
        ["docker", "compose", "version"], capture_output=True, check=False
    ).returncode:
        unavailable("docker compose v2 is missing (scripts/bootstrap installs it)")
    work = Path(tempfile.mkdtemp(prefix="bh-compose-", dir="/tmp"))
    project = f"{prefix}-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": project,
        "COMPOSE_PROFILES": profiles,
        "BEEPHOST_ENV_FILE": str(work / ".env"),
        "BEEPHOST_SECRETS_DIR": str(work / "secrets"),
        "BEEPHOST_SOCKET_ROOT": str(work / "sockets"),
        "BEEPHOST_CONTROLLER_NAME": project,
        **{
            f"BEEPHOST_{name}_PORT": str(free_port())
            for name in ("CONTROLLER", "HTTP", "RPC", "PROMETHEUS", "MCP")
        },
    }
    if settings is not None:
        socket_root = Path(env["BEEPHOST_SOCKET_ROOT"])
        socket_root.mkdir(parents=True)
        env.update(settings(socket_root))
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
    handle.up_log = up.stderr
    if env_file.exists():
        handle.tokens.update(tokens_of(env_file))
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
        # The images its controller built carry its name (the project's): only those.
        built = docker(
            "docker", "image", "ls", "-q", "--filter", f"label={OWNER_LABEL}={project}"
        ).split()
        if built:
            docker("docker", "image", "rm", "-f", *set(built), check=False)
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class ComposeController:
    """The controller inside a compose system, driven as e2e tests drive their own
    process (``ControllerProcess``): a client, what it owns, a kill and a start."""

    compose: Compose
    docker_cli: str

    @property
    def name(self) -> str:
        """Its BEEPHOST_CONTROLLER_NAME: the compose project's (compose_system)."""
        return self.compose.project

    @property
    def url(self) -> str:
        return self.compose.url("CONTROLLER")

    def environ(self) -> dict[str, str]:
        """What the CLI needs to reach it: its token."""
        return {
            **os.environ,
            "BEEPHOST_CONTROLLER_TOKEN": self.compose.tokens["CONTROLLER"],
        }

    def client(self, timeout: float = 30.0) -> ControllerClient:
        return ControllerClient(
            self.url, token=self.compose.tokens["CONTROLLER"], timeout=timeout
        )

    def owned(self, kind: str = "container") -> list[str]:
        return owned_by(self.docker_cli, self.name, kind)

    def kill(self) -> None:
        """SIGKILL its container: no shutdown code runs (Docker's policy leaves a kill
        alone; ``start`` brings it back)."""
        self.compose.run("kill", "-s", "SIGKILL", "controller")

    def start(self) -> None:
        self.compose.run("up", "-d", "--wait", "controller", timeout=300)
