"""Warm pools on the real engine: fill, claim, refill, concurrent claims, a controller
killed with a pool (its members adopted, nothing orphaned), and draining.

Each test runs twice: on the module's own controller process
(tests/e2e/controller_process.py) and on the controller inside the compose system
``scripts/up`` brings up (``ON_BOTH``), where users run it. Every member is a real
container; each test leaves its pools at size 0 and stops what it
claimed.
"""

import threading
import time
from collections.abc import Iterator

import pytest

from beephost_client import connect
from beephost_client.controller import Backend, BackendType, ControllerClient, Pool
from beephost_protocol.errors import Conflict
from tests.e2e.controller_process import (
    ON_BOTH,
    ControllerTarget,
    build_environment,
    stopped_after,
)

pytestmark = pytest.mark.docker

ENV = "pooled"


@pytest.fixture(scope="module")
def environment(api: ControllerClient) -> str:
    build_environment(api, ENV, [], timeout=600)
    return ENV


def _pool(api: ControllerClient, kind: str) -> Pool:
    (found,) = [p for p in api.pools(ENV) if p.type == kind]
    return found


def _wait_ready(
    api: ControllerClient, kind: str, count: int, within: float = 90
) -> None:
    deadline = time.monotonic() + within
    while (pool := _pool(api, kind)).ready < count:
        assert time.monotonic() < deadline, f"pool never had {count} ready: {pool}"
        time.sleep(0.2)


def _fill(
    api: ControllerClient, environment: str, kind: BackendType, size: int
) -> None:
    """Set a pool's size and wait until that many members are ready."""
    api.set_pool(environment, kind, size)
    _wait_ready(api, kind, size)


def _members(api: ControllerClient, kind: str) -> list[Backend]:
    return [b for b in api.backends() if b.pooled and b.type == kind]


@pytest.fixture
def drained(api: ControllerClient, environment: str) -> Iterator[None]:
    """Every pool of the environment back to none, and its members gone, after the
    test."""
    yield
    for kind in ("pipe", "http", "rpc"):
        api.set_pool(environment, kind, 0)
    deadline = time.monotonic() + 60
    # A member's row goes once its container is removed.
    while any(b.environment == environment for b in api.backends()):
        assert time.monotonic() < deadline, "pool members were not removed"
        time.sleep(0.2)


def _answers(backend: Backend) -> int:
    assert backend.endpoint is not None
    assert backend.token is not None
    with connect(backend.endpoint, token=backend.token) as client:
        value: int = client.evaluate("1 + 1")
    return value


@ON_BOTH
@pytest.mark.usefixtures("drained")
def test_a_pool_fills_hands_out_a_ready_backend_and_refills(
    api: ControllerClient, environment: str
) -> None:
    pool = api.set_pool(environment, "http", 2)
    assert (pool.size, pool.source) == (2, "environment")
    _wait_ready(api, "http", 2)
    members = {b.id for b in _members(api, "http")}
    assert len(members) == 2
    with pytest.raises(Conflict):  # no one learns a member's token before its claim
        api.backend_connection(next(iter(members)))
    backend = api.start_backend(environment, "http", ttl=600)
    with stopped_after(api, backend):
        assert backend.id in members
        assert (backend.status, backend.pooled) == ("ready", False)
        assert backend.claimed_at is not None
        assert backend.expires_at == pytest.approx(backend.claimed_at + 600)
        assert _answers(backend) == 2  # at once: no wait for a start
        # A fresh sandbox: nothing of an earlier user (none ever ran code in it).
        assert backend.endpoint is not None
        with connect(backend.endpoint, token=backend.token) as client:
            assert (
                client.evaluate("sorted(__import__('os').listdir('/workspace'))") == []
            )
        _wait_ready(api, "http", 2)  # refilled behind the claim
        assert backend.id not in {b.id for b in _members(api, "http")}
        assert api.backend_connection(backend.id).token == backend.token
        metrics = api.metrics()
        assert 'beephost_controller_pool_claims_total{result="hit",type="http"}' in (
            metrics
        )
        assert (
            'beephost_controller_pool_backends{environment="pooled",state="ready",'
            'type="http"} 2.0' in metrics
        )


@ON_BOTH
@pytest.mark.usefixtures("drained")
def test_concurrent_starts_never_get_one_member_twice(
    api: ControllerClient, controller_target: ControllerTarget, environment: str
) -> None:
    _fill(api, environment, "pipe", 3)
    got: list[Backend] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(5)

    def start() -> None:
        try:
            with controller_target.client() as own:
                barrier.wait()
                got.append(own.start_backend(environment, "pipe"))
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        assert not errors, errors
        assert len({b.id for b in got}) == 5
        claimed = [b for b in got if b.claimed_at is not None]
        assert len(claimed) == 3
        assert len({b.token for b in got}) == 5
        for backend in got:
            ready = api.wait_backend(backend.id, timeout=60)
            assert ready.status == "ready"
            assert _answers(backend) == 2
    finally:
        for backend in got:
            api.stop_backend(backend.id)


@ON_BOTH
@pytest.mark.usefixtures("drained")
def test_a_killed_controller_adopts_its_pool_and_orphans_nothing(
    api: ControllerClient, controller_target: ControllerTarget, environment: str
) -> None:
    _fill(api, environment, "rpc", 2)
    before = {b.id for b in _members(api, "rpc")}
    controller_target.kill()  # SIGKILL: no shutdown, the pool's containers keep running
    controller_target.start()
    _wait_ready(api, "rpc", 2)
    assert {b.id for b in _members(api, "rpc")} == before, "adopted, not replaced"
    owned = controller_target.owned("backend")
    assert len(owned) == len(api.backends()), owned
    backend = api.start_backend(environment, "rpc")
    with stopped_after(api, backend):
        assert backend.id in before
        assert _answers(backend) == 2


@ON_BOTH
@pytest.mark.usefixtures("drained")
def test_size_zero_removes_the_members_and_their_containers(
    api: ControllerClient, controller_target: ControllerTarget, environment: str
) -> None:
    _fill(api, environment, "pipe", 1)
    (member,) = _members(api, "pipe")
    assert member.container_id is not None
    assert member.container_id[:12] in controller_target.owned()
    api.set_pool(environment, "pipe", 0)
    deadline = time.monotonic() + 30
    # Out of the pool at once (no claim can get it), its row gone once it is removed.
    while member.id in {b.id for b in api.backends()}:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert not _members(api, "pipe")
    assert member.container_id[:12] not in controller_target.owned()
