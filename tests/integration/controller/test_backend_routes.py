"""Backend routes, config, the admin environment and token scopes, on a real uvicorn
server listening on TCP and on the admin Unix socket at once (as ``beephost-controller``
does), through the real SDK. Containers come from an in-memory engine here; the
Docker-backed path is tested in tests/e2e/test_controller_backends.py.
"""

import json
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from beephost_client.controller import ControllerClient
from beephost_controller.app import create_app
from beephost_controller.ports import BackendContainers, BackendEngine, ImageBuilder
from beephost_controller.service import Resolve
from beephost_controller.settings import Settings
from beephost_controller.testing import MemoryContainers, MemoryImageBuilder
from beephost_protocol.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from tests.integration.controller.test_controller_api import (
    fake_resolver,
)
from tests.integration.serving import served

TOKEN = "t0ken-of-the-controller"


@dataclass
class Live:
    tcp_url: str
    unix_url: str
    containers: MemoryContainers
    app: Any = None

    def client(self, token: str | None = TOKEN, unix: bool = False) -> ControllerClient:
        return ControllerClient(self.unix_url if unix else self.tcp_url, token=token)

    def worker_env(self, backend_id: str) -> dict[str, str]:
        spec = next(s for s in self.containers.specs.values() if backend_id in s.name)
        key = next(k for k in spec.environment if k.endswith("_WORKER_ENV"))
        value: dict[str, str] = json.loads(spec.environment[key])
        return value


def _serve(
    root: Path,
    token: str | None,
    *,
    builder: ImageBuilder | None = None,
    resolver: Resolve = fake_resolver,
    containers: BackendContainers | None = None,
    engine: BackendEngine | None = None,
    supervise_interval: float = 2.0,
    **more: object,
) -> Iterator[Live]:
    settings = Settings.model_validate(
        {
            "database": root / "controller.db",
            "socket_root": root / "s",
            "token": SecretStr(token) if token else None,
            "pythons": ["3.11"],
            "supervise_interval": supervise_interval,
            **more,
        }
    )
    memory = MemoryContainers()
    app = create_app(
        settings,
        builder=builder or MemoryImageBuilder(),
        resolver=resolver,
        containers=containers or memory,
        engine=engine,
    )
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    unix_path = settings.admin_socket
    # A second run on the same root (a restart) finds the first one's socket.
    unix_path.parent.mkdir(parents=True, exist_ok=True)
    unix_path.unlink(missing_ok=True)
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(unix_path))
    try:
        with served(
            app,
            sockets=[tcp, unix],
            ready=lambda: app.state.system.reconciled,
            timeout_graceful_shutdown=2,
        ):
            yield Live(
                f"http://127.0.0.1:{tcp.getsockname()[1]}",
                f"unix://{unix_path}",
                memory,
                app,
            )
    finally:
        tcp.close()
        unix.close()
        memory.close()


@pytest.fixture
def root() -> Iterator[Path]:
    # Unix socket paths are short (108 bytes): not under pytest's long tmp_path.
    path = Path(tempfile.mkdtemp(prefix="bh-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def live(root: Path) -> Iterator[Live]:
    yield from _serve(root, TOKEN)


def _ready_env(api: ControllerClient, name: str) -> None:
    env = api.create_environment(name, requirements=["six"])
    assert env.job_id is not None
    assert api.wait_job(env.job_id, timeout=30).succeeded


def test_backend_lifecycle(live: Live) -> None:
    with live.client() as api:
        _ready_env(api, "data")
        started = api.start_backend(
            "data", "http", limits={"memory_mb": 256, "pids": 64}
        )
        assert started.token, "the start reply carries the token"
        assert (started.limits.memory_mb, started.limits.pids) == (256, 64)
        assert started.options["read_only"] is True
        assert started.admin is False
        assert [b.id for b in api.backends()] == [started.id]
        assert all(b.token is None for b in api.backends()), "lists never show tokens"
        found = api.wait_backend(started.id, timeout=10)
        assert found.status == "ready"
        assert found.endpoint is not None
        assert found.endpoint.startswith("http://127.0.0.1:")
        connection = api.backend_connection(started.id)
        assert (connection.url, connection.token) == (found.endpoint, started.token)
        assert isinstance(api.backend_logs(started.id, tail=10), str)
        api.stop_backend(started.id)
        with pytest.raises(NotFound):
            api.backend(started.id)
        with pytest.raises(NotFound):
            api.stop_backend(started.id)
        assert live.containers.containers == {}


def test_bad_backend_requests_are_typed_errors(live: Live) -> None:
    with live.client() as api:
        with pytest.raises(NotFound):
            api.start_backend("nowhere", "pipe")
        _ready_env(api, "later")
        for bad in (
            {"type": "carrier-pigeon"},
            {"limits": {"memory_mb": 1}},
            {"options": {"cap_add": ["SYS_ADMIN"]}},
            {"options": {"user": "root"}},
            {"options": {"privileged": True}},
            {"token": "short"},
        ):
            body = {"environment": "later", "type": "pipe", **bad}
            with pytest.raises(InvalidRequest):
                api._json("POST", "/api/v1/backends", body=body)
        assert api.backends() == [], "nothing was started by a bad request"


def _pool_members(api: ControllerClient, count: int) -> list[str]:
    deadline = time.monotonic() + 10
    while len(members := [b.id for b in api.backends() if b.pooled]) != count:
        assert time.monotonic() < deadline, f"not {count} pool members: {members}"
        time.sleep(0.05)
    return members


def test_pools_are_set_shown_refused_to_strangers_and_drained(live: Live) -> None:
    with live.client() as api:
        _ready_env(api, "warm")
        pool = api.set_pool("warm", "pipe", 2, limits={"memory_mb": 256})
        assert (pool.environment, pool.type, pool.size) == ("warm", "pipe", 2)
        assert (pool.limits.memory_mb, pool.source) == (256, "environment")
        members = _pool_members(api, 2)
        assert [p.type for p in api.pools()] == ["pipe"]
        assert api.pools("warm")[0].ready + api.pools("warm")[0].starting == 2
        with pytest.raises(Conflict):  # its token is for whoever claims it
            api.backend_connection(members[0])
        assert api.backends(mine=True) == [], "members are nobody's yet"
        # In this engine no member answers a probe: the start is a cold one.
        cold = api.start_backend("warm", "pipe", limits={"memory_mb": 256})
        assert cold.id not in members
        assert cold.claimed_at is None
        assert [b.id for b in api.backends(mine=True)] == [cold.id]
        metrics = api.metrics()
        assert 'beephost_controller_pool_claims_total{result="miss",type="pipe"}' in (
            metrics
        )
        assert 'beephost_controller_pool_size{environment="warm",type="pipe"} 2.0' in (
            metrics
        )
        for bad in ({"size": -1}, {"size": 65}, {"size": 1, "limits": {"cpus": 0}}):
            with pytest.raises(InvalidRequest):
                api._json("PUT", "/api/v1/environments/warm/pools/pipe", body=bad)
        with pytest.raises(InvalidRequest):
            api._json("PUT", "/api/v1/environments/warm/pools/fax", body={"size": 1})
        with pytest.raises(NotFound):
            api.set_pool("nowhere", "http", 1)
        with pytest.raises(Conflict):  # a backend of its own still runs
            api.delete_environment("warm")
        api.stop_backend(cold.id)
        api.delete_environment("warm")  # the members go with it
        assert api.backends() == []
        assert live.containers.containers == {}
        assert api.pools() == []


def test_config_hides_the_token(live: Live) -> None:
    with live.client() as api:
        config = api.config()
    assert config["token_set"] is True
    assert "token" not in config
    assert TOKEN not in json.dumps(config)
    assert config["restart_limit"] == 5


def test_admin_environment_is_ensured(live: Live) -> None:
    with live.client() as api:
        first = api.admin_environment()
        assert (first.name, first.admin) == ("admin", True)
        assert first.job_id is not None
        assert api.wait_job(first.job_id, timeout=30).succeeded
        again = api.admin_environment()
        assert again.job_id == first.job_id, "an existing one is returned, not rebuilt"


def test_admin_backend_token_scope(live: Live) -> None:
    with live.client() as api:
        api.admin_environment()
        env = api.environment("admin")
        assert env.job_id is not None
        api.wait_job(env.job_id, timeout=30)
        _ready_env(api, "plain")
        admin = api.start_backend("admin", "pipe")
        plain = api.start_backend("plain", "pipe")
        assert admin.admin is True
        assert plain.admin is False
    scoped = live.worker_env(admin.id)["BEEPHOST_CONTROLLER_TOKEN"]
    assert scoped not in (TOKEN, admin.token)
    with live.client(scoped, unix=True) as inside:
        assert {e.name for e in inside.environments()} == {"admin", "plain"}
        started = inside.start_backend("plain", "http")
        assert started.status in ("starting", "ready")
        assert started.started_by == admin.id
        # It sees and controls what it started, and nothing else: not even that
        # the others exist (their tokens are not its to read).
        assert [b.id for b in inside.backends()] == [started.id]
        assert inside.backend_connection(started.id).token == started.token
        for call in (
            inside.backend,
            inside.backend_connection,
            inside.stop_backend,
            inside.installed_packages,
        ):
            with pytest.raises(NotFound):
                call(plain.id)
        inside.stop_backend(started.id)
        with pytest.raises(Unauthorized):
            inside.config()  # outside the scope
    with live.client() as api:
        assert {b.id for b in api.backends()} == {admin.id, plain.id}
        assert {b.id for b in api.backends(mine=True)} == {admin.id, plain.id}
        assert api.backend(plain.id).started_by is None
    for wrong in (plain.token, scoped + "x", scoped[:-1], "", None):
        with live.client(wrong, unix=True) as other, pytest.raises(Unauthorized):
            other.environments()
    with live.client() as api:
        api.stop_backend(admin.id)
    with live.client(scoped, unix=True) as revoked, pytest.raises(Unauthorized):
        revoked.environments()


def test_unix_socket_needs_a_token_even_when_tcp_is_open(root: Path) -> None:
    for live in _serve(root, None):
        with live.client(None) as open_tcp:
            assert open_tcp.environments() == []
        with live.client(None, unix=True) as unix, pytest.raises(Unauthorized):
            unix.environments()
        with live.client("anything", unix=True) as unix, pytest.raises(Unauthorized):
            unix.environments()


def test_long_poll_returns_at_a_change(live: Live) -> None:
    live.containers.healthy = False
    with live.client() as api:
        _ready_env(api, "slow")
        started = api.start_backend("slow", "rpc")
        # The backend's container, not its relay's (created first).
        (name,) = [n for n in live.containers.containers if n.endswith(started.id)]
        timer = threading.Timer(0.3, live.containers.exit, (name, 0))
        timer.start()
        t0 = time.monotonic()
        changed = api._json("GET", f"/api/v1/backends/{started.id}?wait=10")
        elapsed = time.monotonic() - t0
        timer.join()
        assert changed["status"] == "exited"
        assert changed["last_exit"] == "stopped"
        assert elapsed < 9, "returned at the change, not at the timeout"
        with pytest.raises(InvalidRequest):
            api._json("GET", f"/api/v1/backends/{started.id}?wait=31")
