"""SqliteStore: typed updates, an environment's status derived from its latest job,
and a database of an older controller opened by this one."""

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from beephost_controller.migrations import MIGRATIONS
from beephost_controller.rows import (
    BackendConfig,
    BackendRow,
    BackendUpdate,
    EnvironmentRow,
    JobRow,
    build_state,
)
from beephost_controller.schemas import BackendLimits, BackendOptions
from beephost_controller.schemas.egress import EgressPolicy
from beephost_controller.store import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "db")


def _env(name: str = "e") -> EnvironmentRow:
    return EnvironmentRow(name, "3.11", ["six"], False, False)


def test_an_environment_follows_its_latest_job(store: SqliteStore) -> None:
    store.insert_environment(_env())
    assert store.environment("e").status == "pending"  # type: ignore[union-attr]
    seen = []
    for step in ("queued", "running", "failed"):
        if step == "queued":
            store.insert_job(JobRow("job-1", "build", "e", "queued"))
            store.set_environment_job("e", "job-1")
        elif step == "running":
            store.job_running("job-1", 1.0)
        else:
            store.environment_failed("e", "pip exploded")
            store.finish_job("job-1", "failed", "pip exploded", 2.0)
        row = store.environment("e")
        assert row is not None
        seen.append(row.status)
    assert seen == ["pending", "building", "failed"]
    store.insert_job(JobRow("job-2", "build", "e", "queued"))
    store.set_environment_job("e", "job-2")
    retried = store.environment("e")
    assert retried is not None
    assert (retried.status, retried.error) == ("pending", None), "a retry clears it"
    store.environment_ready("e", lock="six==1.0", image="img:1")
    store.finish_job("job-2", "succeeded", None, 3.0)
    ready = store.environment("e")
    assert ready is not None
    assert (ready.status, ready.lock, ready.image) == ("ready", "six==1.0", "img:1")
    assert [r.status for r in store.environments()] == ["ready"]


@pytest.mark.parametrize(
    ("job", "image", "error", "status"),
    [
        ("queued", None, None, "pending"),
        ("running", None, None, "building"),
        ("succeeded", "img", None, "ready"),
        ("failed", None, "boom", "failed"),
        (None, None, None, "pending"),
        (None, "img", None, "ready"),
        (None, None, "boom", "failed"),
    ],
)
def test_build_state(
    job: str | None, image: str | None, error: str | None, status: str
) -> None:
    assert build_state(job, image, error) == status  # type: ignore[arg-type]


def test_backend_updates_write_only_what_they_set(store: SqliteStore) -> None:
    store.insert_environment(_env())
    config = BackendConfig(
        24567, "127.0.0.1", BackendLimits(cpus=0.5), BackendOptions()
    )
    store.insert_backend(BackendRow("b-1", "e", "http", "starting", "c", "t", config))
    store.update_backend("b-1", BackendUpdate(status="exited", reason="missing"))
    store.update_backend("b-1", BackendUpdate(exit_code=137, last_exit="oom_killed"))
    moved = BackendConfig(24568, "127.0.0.1", config.limits, config.hardening)
    store.update_backend("b-1", BackendUpdate(config=moved))
    row = store.backend("b-1")
    assert row is not None
    assert (row.status, row.reason, row.exit_code, row.last_exit) == (
        "exited",
        "missing",
        137,
        "oom_killed",
    )
    assert row.config == moved
    assert (row.limits.cpus, row.options.read_only, row.admin) == (0.5, True, False)


def test_a_database_of_an_older_controller_opens_and_keeps_its_state(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for version, script in enumerate(MIGRATIONS[:2], start=1):
        db.executescript(script)
        db.execute(f"PRAGMA user_version = {version}")
    db.execute(
        "INSERT INTO jobs VALUES ('job-1', 'build', 'e', 'succeeded', NULL, 1, 1, 2)"
    )
    db.execute(
        "INSERT INTO environments VALUES ('e', '3.11', '[\"six\"]', 0, 0, 'ready', "
        "'six==1.0', 'img:1', NULL, 'job-1', 1, 2)"
    )
    db.execute(
        "INSERT INTO backends (id, environment, type, status, container_name, token, "
        "options, created_at, updated_at) VALUES ('b-1', 'e', 'rpc', 'ready', 'c', "
        "'t', ?, 1, 2)",
        (
            '{"port": 24567, "bind_address": "127.0.0.1", "limits": {"memory_mb": 256, '
            '"cpus": 1.0, "pids": 64}, "read_only": true, "network": false, '
            '"tmpfs_mb": 64, "user": "10001:10001", "cap_add": [], '
            '"no_new_privileges": true}',
        ),
    )
    db.commit()
    db.close()
    store = SqliteStore(path)
    assert store.schema_version == len(MIGRATIONS)
    env = store.environment("e")
    assert env is not None
    assert (env.status, env.image, env.requirements) == ("ready", "img:1", ["six"])
    backend = store.backend("b-1")
    assert backend is not None
    assert backend.config.port == 24567
    assert (backend.limits.memory_mb, backend.options.network) == (256, False)


def test_an_environments_allow_list_is_kept_and_older_rows_have_none(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v5.db"
    db = sqlite3.connect(path)
    for version, script in enumerate(MIGRATIONS[:5], start=1):
        db.executescript(script)
        db.execute(f"PRAGMA user_version = {version}")
    db.execute(
        "INSERT INTO environments VALUES ('old', '3.11', '[]', 1, 0, NULL, 'img:1', "
        "NULL, NULL, 1, 2)"
    )
    db.commit()
    db.close()
    store = SqliteStore(path)
    assert store.schema_version == len(MIGRATIONS)
    old = store.environment("old")
    assert old is not None
    assert (old.egress_allow, old.egress.mode) == (None, "full")
    policy = EgressPolicy.model_validate(
        {
            "allow": [
                {"host": "api.example.com", "secret": {"secret": "k"}},
                {"cidr": "203.0.113.0/24", "ports": [8443]},
            ]
        }
    )
    row = replace(_env("new"), egress_allow=tuple(policy.allow))
    store.insert_environment(row)
    new = store.environment("new")
    assert new is not None
    assert new.egress_allow == tuple(policy.allow)
    assert new.egress.mode == "allow_list"
    assert new.egress.allow[1].ports == [8443]
