"""A backend's status from its Pod's JSON, as the API server reports it."""

from typing import Any

import pytest

from beephost_controller.backends.status import status_of
from beephost_controller.engine.kube_status import pod_state

LIMIT = 3


def _pod(
    state: dict[str, Any],
    *,
    ready: bool = False,
    restarts: int = 0,
    last: dict[str, Any] | None = None,
    **status: Any,
) -> dict[str, Any]:
    container = {
        "name": "backend",
        "ready": ready,
        "restartCount": restarts,
        "state": state,
        "lastState": {"terminated": last} if last else {},
    }
    return {
        "metadata": {
            "uid": "u-1",
            "name": "p",
            "labels": {"io.beephost.backend": "b-1"},
        },
        "status": {"containerStatuses": [container], **status},
    }


CASES = [
    ({"metadata": {"uid": "u"}, "status": {"phase": "Pending"}}, ("starting", None)),
    (_pod({"waiting": {"reason": "ContainerCreating"}}), ("starting", None)),
    (_pod({"running": {}}), ("starting", None)),
    # Ready in the kubelet's eyes, not yet the controller's (its probe decides).
    (_pod({"running": {}}, ready=True), ("starting", None)),
    (
        _pod(
            {"waiting": {"reason": "CrashLoopBackOff"}},
            restarts=1,
            last={"exitCode": 1},
        ),
        ("starting", "restarting"),
    ),
    (
        _pod(
            {"waiting": {"reason": "CrashLoopBackOff"}},
            restarts=LIMIT,
            last={"exitCode": 3},
        ),
        ("exited", "crashed"),
    ),
    (
        _pod(
            {"waiting": {"reason": "CrashLoopBackOff"}},
            restarts=LIMIT,
            last={"exitCode": 137, "reason": "OOMKilled"},
        ),
        ("exited", "oom_killed"),
    ),
    (_pod({"terminated": {"exitCode": 0}}, phase="Succeeded"), ("exited", "stopped")),
    # Between a crash and the kubelet's restart: restarting, not an exit to act on.
    (_pod({"terminated": {"exitCode": 2}}), ("starting", "restarting")),
    (_pod({"terminated": {"exitCode": 2}}, phase="Failed"), ("exited", "crashed")),
    (
        _pod({"terminated": {"exitCode": 2}}, restarts=LIMIT),
        ("exited", "crashed"),
    ),
    (
        _pod(
            {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}},
        ),
        ("exited", "ImagePullBackOff: not found"),
    ),
    (
        _pod({"terminated": {"exitCode": 137}}, reason="Evicted", message="disk"),
        ("exited", "evicted: disk"),
    ),
]


@pytest.mark.parametrize(("pod", "expected"), CASES)
def test_status_from_the_pod(pod: dict[str, Any], expected: tuple[str, Any]) -> None:
    assert status_of(pod_state(pod, LIMIT)) == expected


def test_a_pod_being_deleted_is_exited_whatever_its_container_says() -> None:
    pod = _pod({"running": {}}, ready=True)
    pod["metadata"]["deletionTimestamp"] = "2026-11-25T00:00:00Z"
    assert status_of(pod_state(pod, LIMIT)) == ("exited", "deleted")


def test_identity_and_restarts_come_from_the_pod() -> None:
    state = pod_state(_pod({"running": {}}, restarts=2), LIMIT)
    assert (state.id, state.name, state.restart_count) == ("u-1", "p", 2)
    assert state.labels == {"io.beephost.backend": "b-1"}
