"""A backend's logs once its container is gone: the tail kept at its stop, or
``not_found``; never ``unavailable`` (a retry that can never succeed). A real server
and SDK, the in-memory engine."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from beephost_client.controller import ControllerClient
from beephost_controller.backends.logs import KEPT_LINES
from beephost_controller.testing import MemoryContainers
from beephost_protocol.errors import NotFound
from tests.integration.controller.test_backend_routes import (
    TOKEN,
    Live,
    _ready_env,
    _serve,
)


@pytest.fixture
def live(short_tmp: Path) -> Iterator[Live]:
    yield from _serve(short_tmp, TOKEN, supervise_interval=0.05)


def _stopped(api: ControllerClient, backend_id: str, reason: str) -> None:
    deadline = time.monotonic() + 10
    while (found := api.backend(backend_id)).status != "stopped":
        assert time.monotonic() < deadline, f"still {found.status}"
        time.sleep(0.05)
    assert found.reason == reason


def _name(containers: MemoryContainers, backend_id: str) -> str:
    return next(name for name in containers.containers if name.endswith(backend_id))


def test_an_idle_backends_logs_are_kept_at_its_stop(live: Live) -> None:
    with live.client() as api:
        _ready_env(api, "data")
        started = api.start_backend("data", "http", idle_timeout=1)
        api.wait_backend(started.id, timeout=10)
        name = _name(live.containers, started.id)
        printed = [f"line {i}\n" for i in range(KEPT_LINES + 5)]
        live.containers.output[name] = "".join(
            [*printed, f"Authorization: Bearer {started.token}\n"]
        )
        # The live container's logs as they are (redacted once kept, below).
        assert api.backend_logs(started.id, tail=2) == (
            f"line 1004\nAuthorization: Bearer {started.token}\n"
        )
        live.containers.report_idle(name, 5.0)
        _stopped(api, started.id, "idle")
        assert name not in live.containers.containers

        logs = api.backend_logs(started.id, tail=3)
        note, *lines = logs.splitlines(keepends=True)
        assert note.startswith(f"[beep-host] backend {started.id} was stopped (idle)")
        assert "kept at the stop" in note
        assert lines == [
            "line 1003\n",
            "line 1004\n",
            "Authorization: Bearer [redacted]\n",
        ]
        assert started.token
        assert started.token not in api.backend_logs(started.id)
        # The kept tail is KEPT_LINES long, whatever tail asks for.
        assert len(api.backend_logs(started.id).splitlines()) == KEPT_LINES + 1

        # Deleting the stopped backend deletes what was kept with it.
        api.stop_backend(started.id)
        with pytest.raises(NotFound):
            api.backend_logs(started.id)


def test_a_backend_whose_container_is_gone_without_kept_logs_is_not_found(
    live: Live,
) -> None:
    with live.client() as api:
        _ready_env(api, "data")
        started = api.start_backend("data", "http")
        api.wait_backend(started.id, timeout=10)
        # The container vanishes behind the controller's back (docker rm, a removal
        # under way): the engine says "No such container"; nothing was kept.
        del live.containers.containers[_name(live.containers, started.id)]
        with pytest.raises(NotFound, match="its logs are gone"):
            api.backend_logs(started.id)
