"""A controller without a container engine (Kubernetes without a Docker host): it is
ready and keeps state; builds fail and starts are unavailable, each saying why."""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from beephost_controller.backends import BackendRequest, BackendService
from beephost_controller.engine.no_engine import (
    REASON,
    NoEngineBackends,
    NoEngineBuilder,
    engine_configured,
)
from beephost_controller.metrics import ControllerMetrics
from beephost_controller.rows import EnvironmentRow
from beephost_controller.settings import Settings
from beephost_controller.store import SqliteStore
from beephost_protocol.errors import InvalidRequest, Unavailable
from tests.integration.controller.test_backend_routes import Live, _serve
from tests.integration.controller.test_controller_api import fake_resolver


def test_engine_configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert not engine_configured(tmp_path / "docker.sock")
    (tmp_path / "docker.sock").touch()
    assert engine_configured(tmp_path / "docker.sock")
    monkeypatch.setenv("DOCKER_HOST", "tcp://dind:2375")
    assert engine_configured(tmp_path / "missing.sock")


@pytest.fixture
def live() -> Iterator[Live]:
    root = Path(tempfile.mkdtemp(prefix="bh-", dir="/tmp"))
    try:
        yield from _serve(
            root,
            "t0ken-of-the-controller",
            builder=NoEngineBuilder(),
            resolver=fake_resolver,
            engine=NoEngineBackends(),
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_ready_with_state_but_no_containers(live: Live) -> None:
    with live.client() as api:
        assert api.ready()["status"] == "ready"
        env = api.create_environment("data", requirements=["six"])
        assert env.job_id is not None
        job = api.wait_job(env.job_id, timeout=30)
        assert job.status == "failed"
        assert job.error is not None
        assert "no container engine" in job.error
        assert api.environment("data").status == "failed"
        assert api.backends() == []
        with pytest.raises(InvalidRequest, match="not ready"):
            api.start_backend("data", "pipe")


def test_a_start_without_an_engine_is_unavailable_with_the_reason(
    tmp_path: Path,
) -> None:
    settings = Settings(database=tmp_path / "db", socket_root=tmp_path / "s")
    store = SqliteStore(settings.database)
    store.insert_environment(
        EnvironmentRow("e", "3.11", [], False, False, "ready", lock="", image="i")
    )
    service = BackendService(settings, store, NoEngineBackends(), ControllerMetrics())
    with pytest.raises(Unavailable) as refused:
        service.start(BackendRequest(environment="e", type="http"))
    assert REASON in refused.value.message
    assert service.reconcile() == {"adopted": 0, "orphan_removed": 0, "missing": 0}
