"""Warm pools: what a refill decides (pure), and claims, refills, limits and adoption
against an in-memory engine and a real SQLite store."""

import logging
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from beephost_controller.backends import BackendRequest, BackendService
from beephost_controller.backends.pool_policy import (
    Pool,
    effective_pools,
    refill,
    serves,
)
from beephost_controller.backends.warm_pools import Pools
from beephost_controller.engine.docker_backends import DockerBackends
from beephost_controller.metrics import ControllerMetrics
from beephost_controller.redact import Redactor
from beephost_controller.rows import BackendConfig, BackendRow, EnvironmentRow, PoolRow
from beephost_controller.schemas import BackendLimits, BackendOptions, BackendStatus
from beephost_controller.schemas.egress import EgressPolicy
from beephost_controller.store import SqliteStore
from beephost_controller.testing import SetClock
from beephost_protocol.errors import QuotaExceeded
from tests.unit.controller.support import (
    backend_service,
    memory_containers,
    ready_environment,
)


def _pool(size: int, **changes: object) -> Pool:
    pool = Pool(
        "e", "http", size, BackendLimits(), BackendOptions(), "environment", False
    )
    return replace(pool, **changes)  # type: ignore[arg-type]


def _member(
    backend_id: str,
    status: BackendStatus,
    created_at: float,
    limits: BackendLimits | None = None,
) -> BackendRow:
    config = BackendConfig(
        None,
        "127.0.0.1",
        limits or BackendLimits(),
        BackendOptions(network=False),
        pooled=True,
    )
    return BackendRow(
        backend_id,
        "e",
        "http",
        status,
        f"c-{backend_id}",
        "t",
        config,
        created_at=created_at,
    )


# -- decisions ---------------------------------------------------------------------------


def test_a_refill_starts_what_is_missing_and_removes_exited_members() -> None:
    members = [_member("a", "ready", 1), _member("b", "exited", 2)]
    plan = refill(_pool(3), members, room=None)
    assert (plan.start, plan.remove) == (2, ("b",))


def test_a_shrinking_pool_removes_members_not_ready_first_then_the_newest() -> None:
    members = [
        _member("old", "ready", 1),
        _member("new", "ready", 3),
        _member("boot", "starting", 2),
    ]
    assert refill(_pool(1), members, room=None).remove == ("boot", "new")
    assert refill(_pool(0), members, room=None).start == 0


def test_members_of_another_setting_are_replaced() -> None:
    bigger = BackendLimits(memory_mb=1024)
    members = [_member("a", "ready", 1), _member("b", "ready", 2, limits=bigger)]
    plan = refill(_pool(2, limits=bigger), members, room=None)
    assert (plan.start, plan.remove) == (1, ("a",))


def test_a_refill_stays_within_the_room_left_and_waits_for_a_built_environment() -> (
    None
):
    assert refill(_pool(5), [], room=2).start == 2
    assert refill(_pool(5), [_member("x", "exited", 1)], room=0).start == 1
    assert refill(_pool(5, startable=False), [], room=None).start == 0


def test_only_a_start_asking_for_what_members_have_is_served() -> None:
    pool = _pool(1)
    plain = BackendRequest(environment="e", type="http")
    assert serves(pool, plain)
    assert serves(pool, replace(plain, ttl=5, idle_timeout=9, started_by="b-1"))
    for other in (
        replace(plain, type="pipe"),
        replace(plain, environment="f"),
        replace(plain, token="x" * 20),
        replace(plain, port=8080),
        replace(plain, bind_address="127.0.0.1"),
        replace(plain, limits=BackendLimits(cpus=2)),
        replace(plain, options=BackendOptions(network=True)),
        replace(plain, pooled=True),
    ):
        assert not serves(pool, other)


def test_defaults_apply_where_an_environment_has_no_setting_and_never_to_admin() -> (
    None
):
    envs = [
        EnvironmentRow("e", "3.11", [], False, False, "ready", image="i"),
        EnvironmentRow("admin", "3.11", [], False, True, "ready", image="i"),
        EnvironmentRow("new", "3.11", [], True, False, "building"),
    ]
    own = [PoolRow("e", "http", 0), PoolRow("admin", "pipe", 1)]
    pools = {
        (p.environment, p.type): p
        for p in effective_pools(envs, own, {"http": 2, "rpc": 1})
    }
    assert set(pools) == {
        ("e", "http"),
        ("e", "rpc"),
        ("admin", "pipe"),
        ("new", "http"),
        ("new", "rpc"),
    }
    assert (pools["e", "http"].size, pools["e", "http"].source) == (0, "environment")
    assert (pools["e", "rpc"].size, pools["e", "rpc"].source) == (1, "default")
    assert not pools["new", "http"].startable
    assert pools["new", "http"].network


# -- applied ---------------------------------------------------------------------------


def _pools(tmp_path: Path, clock: SetClock, **settings: object) -> Pools:
    service = backend_service(tmp_path, clock=clock, settings=settings)
    return Pools(service, clock=clock)


def _filled(
    tmp_path: Path, size: int, *, clock: SetClock | None = None, **settings: object
) -> Pools:
    """Pools whose environment ``e`` keeps ``size`` http members, filled once."""
    pools = _pools(tmp_path, clock or SetClock(), **settings)
    pools.configure("e", "http", size)
    pools.fill()
    return pools


def _sample(pools: Pools, name: str, labels: dict[str, str]) -> float | None:
    return pools.metrics.registry.get_sample_value(name, labels)


def test_a_claim_hands_out_a_ready_member_with_its_callers_terms(
    tmp_path: Path,
) -> None:
    clock = SetClock()
    pools = _filled(tmp_path, 2, clock=clock)
    members = [row for row in pools.store.backends() if row.pooled]
    assert [row.status for row in members] == ["ready", "ready"]
    assert all(row.ttl is None and row.idle_timeout is None for row in members)
    clock.now += 100
    row = pools.start(
        BackendRequest(environment="e", type="http", ttl=60, started_by="b-admin")
    )
    assert row.id in {m.id for m in members}
    assert (row.pooled, row.claimed_at, row.status) == (False, clock.now, "ready")
    assert (row.ttl, row.expires_at, row.started_by) == (60, clock.now + 60, "b-admin")
    assert row.idle_timeout == 3600  # the controller's default, as for a cold start
    labels = {"type": "http", "result": "hit"}
    assert _sample(pools, "beephost_controller_pool_claims_total", labels) == 1
    pools.fill()  # refilled: two unclaimed again, the claimed one is the caller's
    assert pools.state("e", "http").ready == 2
    assert len(pools.store.backends()) == 3
    gauge = {"environment": "e", "type": "http", "state": "ready"}
    assert _sample(pools, "beephost_controller_pool_backends", gauge) == 2


def test_a_members_token_is_a_secret_from_its_start(tmp_path: Path) -> None:
    pools = _pools(tmp_path, SetClock())
    redactor = Redactor()
    pools.backends.add_secret = redactor.add
    pools.configure("e", "pipe", 1)
    pools.fill()  # the filler's start: no route saw the token
    (member,) = pools.store.backends()
    assert member.token not in redactor.redact(f"leaked {member.token}")


def test_a_start_the_pool_cannot_serve_starts_cold(tmp_path: Path) -> None:
    pools = _filled(tmp_path, 1)
    member = next(row for row in pools.store.backends() if row.pooled)
    cold = pools.start(BackendRequest(environment="e", type="http", token="t" * 20))
    assert cold.id != member.id
    assert cold.token == "t" * 20
    assert cold.claimed_at is None
    assert pools.store.backend(member.id).pooled  # type: ignore[union-attr]


def test_an_empty_pool_is_a_miss_and_the_start_is_cold(tmp_path: Path) -> None:
    pools = _pools(tmp_path, SetClock())
    pools.configure("e", "pipe", 1)  # not filled yet
    row = pools.start(BackendRequest(environment="e", type="pipe"))
    assert (row.pooled, row.claimed_at) == (False, None)
    labels = {"type": "pipe", "result": "miss"}
    assert _sample(pools, "beephost_controller_pool_claims_total", labels) == 1


def test_concurrent_claims_never_hand_out_a_member_twice(tmp_path: Path) -> None:
    pools = _filled(tmp_path, 4)
    got: list[str | None] = []
    lock = threading.Lock()
    barrier = threading.Barrier(12)

    def claim() -> None:
        barrier.wait()
        row = pools.claim(BackendRequest(environment="e", type="http"))
        with lock:
            got.append(None if row is None else row.id)

    threads = [threading.Thread(target=claim) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handed = [backend_id for backend_id in got if backend_id is not None]
    assert len(handed) == 4
    assert len(set(handed)) == 4
    assert got.count(None) == 8


def test_a_member_that_does_not_answer_goes_back_and_the_next_one_is_claimed(
    tmp_path: Path,
) -> None:
    pools = _filled(tmp_path, 2)
    dead, alive = pools.store.backends()
    pools.backends.probe = lambda endpoint, token: token != dead.token
    row = pools.claim(BackendRequest(environment="e", type="http"))
    assert row is not None
    assert row.id == alive.id
    back = pools.store.backend(dead.id)
    assert back is not None
    assert (back.pooled, back.status, back.claimed_at) == (True, "starting", None)
    pools.backends.probe = None
    pools.fill()  # the filler's look: the engine says it is healthy again
    assert pools.state("e", "http").ready == 2


def test_a_member_slow_to_answer_once_is_still_claimed(tmp_path: Path) -> None:
    # A loaded host: the first probe times out, the next answers. Turning the member
    # away would cost its claimer a cold start.
    pools = _filled(tmp_path, 1)
    [member] = pools.store.backends()
    answers = iter([False, True])
    pools.backends.probe = lambda endpoint, token: next(answers)
    row = pools.claim(BackendRequest(environment="e", type="http"))
    assert row is not None
    assert row.id == member.id
    assert next(answers, "spent") == "spent"


def test_members_count_against_max_backends(tmp_path: Path) -> None:
    pools = _filled(tmp_path, 5, max_backends=3)
    assert pools.state("e", "http").ready == 3
    with pytest.raises(QuotaExceeded) as raised:
        pools.backends.start(BackendRequest(environment="e", type="pipe"))
    assert raised.value.data == {"max_backends": 3}
    pools.start(BackendRequest(environment="e", type="http"))  # a claim: no new one
    assert len(pools.store.backends()) == 3


def test_a_changed_setting_replaces_members_and_size_zero_drains(
    tmp_path: Path,
) -> None:
    pools = _filled(tmp_path, 1)
    (old,) = pools.store.backends()
    bigger = BackendLimits(memory_mb=1024)
    pools.configure("e", "http", 1, limits=bigger)
    pools.fill()
    (new,) = pools.store.backends()
    assert new.id != old.id
    assert new.limits == bigger
    assert old.container_name not in memory_containers(pools.backends).containers
    claimed = pools.start(BackendRequest(environment="e", type="http", limits=bigger))
    assert claimed.id == new.id
    pools.configure("e", "http", 0)
    pools.fill()
    assert [row.id for row in pools.store.backends()] == [new.id]  # claimed: kept


def test_a_restarted_controller_adopts_the_members_and_starts_no_more(
    tmp_path: Path,
) -> None:
    pools = _pools(tmp_path, SetClock())
    pools.configure("e", "pipe", 2)
    pools.fill()
    before = {row.id for row in pools.store.backends()}
    engine = memory_containers(pools.backends)
    settings, clock = pools.settings, SetClock()
    again = BackendService(
        settings,
        SqliteStore(settings.database),
        DockerBackends(settings, engine, clock=clock),
        ControllerMetrics(),
        clock=clock,
    )
    counts = again.reconcile()
    assert counts["adopted"] == 2
    restarted = Pools(again, clock=clock)
    restarted.fill()
    assert {row.id for row in again.store.backends()} == before
    assert restarted.claim(BackendRequest(environment="e", type="pipe")) is not None


def test_idle_time_counts_from_the_claim(tmp_path: Path) -> None:
    clock = SetClock()
    pools = _filled(tmp_path, 1, clock=clock)
    clock.now += 5000  # idle in the pool for longer than any idle timeout
    row = pools.start(BackendRequest(environment="e", type="http", idle_timeout=60))
    engine = memory_containers(pools.backends)
    engine.report_idle(row.container_name, 5000)
    pools.backends.supervise()
    assert pools.store.backend(row.id).status == "ready"  # type: ignore[union-attr]
    clock.now += 60
    pools.backends.supervise()
    stopped = pools.store.backend(row.id)
    assert stopped is not None
    assert (stopped.status, stopped.reason) == (
        "stopped",
        "idle",
    )


def test_members_stopped_at_a_shutdown_leave_no_rows(tmp_path: Path) -> None:
    pools = _filled(tmp_path, 1)
    (member,) = pools.store.backends()
    assert pools.backends.stop_all() == 1
    pools.fill()  # the next controller's first pass
    (fresh,) = pools.store.backends()
    assert fresh.id != member.id
    assert fresh.pooled


def test_deleting_the_setting_falls_back_to_the_default(tmp_path: Path) -> None:
    pools = _pools(tmp_path, SetClock(), pool_size={"rpc": 2})
    assert pools.state("e", "rpc").source == "default"
    pools.configure("e", "rpc", 1)
    assert pools.state("e", "rpc").size == 1
    pools.reset("e", "rpc")
    assert (pools.state("e", "rpc").size, pools.state("e", "rpc").source) == (
        2,
        "default",
    )


def test_a_refusal_that_lasts_is_logged_once_per_pool(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An allow-list without an egress proxy to run: every start of a member fails.
    allow = EgressPolicy.model_validate({"allow": [{"host": "api.example.com"}]})
    env = replace(ready_environment("e"), egress_allow=tuple(allow.allow))
    service = backend_service(tmp_path, environments=[env])
    pools = Pools(service)
    pools.configure("e", "http", 1)
    with caplog.at_level(logging.DEBUG, logger="beephost_controller"):
        for _ in range(3):
            pools.fill()
    refusals = [r for r in caplog.records if "could not start a member" in r.message]
    assert [r.levelno for r in refusals] == [
        logging.WARNING,
        logging.DEBUG,
        logging.DEBUG,
    ]
    assert "egress proxy" in refusals[0].message
    assert pools.store.backends() == []
