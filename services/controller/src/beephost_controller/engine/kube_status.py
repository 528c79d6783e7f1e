"""A backend's state from its Pod, as the API server reports it: pure functions.

The Pod's one container restarts in place (``restartPolicy: OnFailure``: the
workspace's emptyDir outlives a crash, as a volume does on Docker); the controller's
restart limit counts the kubelet's restarts, and past it a crash loop is reported as
the exit it is. What only Kubernetes knows (evicted, an image that cannot be pulled,
a pod being deleted) becomes the state's ``detail``: the backend's reason in
``status``. Ready is the controller's probe's word, through the Service, not the
kubelet's.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from beephost_controller.engine.kube_firewall import FIREWALL_CONTAINER
from beephost_controller.engine.kube_manifests import CONTAINER
from beephost_controller.ports import ContainerState

#: Waiting reasons that no wait will end: the backend cannot start as it is.
STUCK = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
#: Exit code of a container the kernel killed for memory (137 = 128 + SIGKILL).
KILLED = 137


def pod_state(pod: Mapping[str, Any], restart_limit: int) -> ContainerState:
    """The state of a backend's Pod (its JSON): running, restarting, exited..."""
    meta, status = pod.get("metadata", {}), pod.get("status", {})
    container = _container_status(status)
    restarts = int(container.get("restartCount", 0))
    seen = _seen(meta, status, container, restarts >= restart_limit)
    return ContainerState(
        id=str(meta.get("uid", "")),
        name=str(meta.get("name", "")),
        labels=dict(meta.get("labels") or {}),
        status=seen.status,
        health=seen.health,
        exit_code=seen.exit_code,
        oom_killed=seen.oom_killed,
        restart_count=restarts,
        ports={},
        detail=seen.detail,
    )


@dataclass(frozen=True)
class _Seen:
    status: str
    health: str | None = None
    exit_code: int = 0
    oom_killed: bool = False
    detail: str | None = None


def _seen(
    meta: Mapping[str, Any],
    status: Mapping[str, Any],
    container: Mapping[str, Any],
    out_of_restarts: bool,
) -> _Seen:
    state = container.get("state", {})
    finished = status.get("phase") in ("Succeeded", "Failed")
    last = container.get("lastState", {}).get("terminated") or {}
    if meta.get("deletionTimestamp"):
        return _exited(last, "deleted")
    if status.get("reason") == "Evicted":
        message = status.get("message") or "the node ran short of a resource"
        return _exited(last, f"evicted: {message}")
    refused = _init_failure(status)
    if refused is not None:
        return refused
    if "running" in state:
        # No health of the kubelet's is the client's truth: a pod Ready is in its
        # Service only once kube-proxy has synced, so the controller's own probe
        # through the Service says when it is ready (``BackendService.refresh``).
        return _Seen("running")
    if "terminated" in state:
        ended = _exited(state["terminated"])
        if ended.exit_code != 0 and not out_of_restarts and not finished:
            return _Seen("restarting")  # the kubelet starts it again (OnFailure)
        return ended
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason", "")
    if reason in STUCK:
        return _exited(last, stuck(waiting))
    if reason == "CrashLoopBackOff":
        # Past the controller's limit: the exit that last ended it, for good.
        return _exited(last) if out_of_restarts else _Seen("restarting")
    return _Seen("created")


def _container_status(
    status: Mapping[str, Any],
    name: str = CONTAINER,
    kind: str = "containerStatuses",
) -> Mapping[str, Any]:
    for container in status.get(kind) or ():
        if container.get("name") == name:
            return dict(container)
    return {}


def _init_failure(status: Mapping[str, Any]) -> _Seen | None:
    """The pod's firewall could not be installed: the backend never starts (the
    kubelet would retry an init container that fails the same way each time)."""
    init = _container_status(status, FIREWALL_CONTAINER, "initContainerStatuses")
    state = init.get("state", {})
    ended = state.get("terminated") or init.get("lastState", {}).get("terminated")
    if ended and int(ended.get("exitCode", 0)) != 0:
        said = (ended.get("message") or ended.get("reason") or "").strip()
        return _exited(
            ended,
            f"the pod's firewall could not be installed (exit {ended['exitCode']}): "
            f"{said or 'no message'}; its image needs /usr/sbin/nft (the Debian base "
            "images have it) and the namespace must allow NET_ADMIN in an init "
            "container (or set BEEPHOST_CONTROLLER_KUBERNETES_POD_FIREWALL=false "
            "on a CNI that enforces NetworkPolicy)",
        )
    waiting = state.get("waiting") or {}
    if waiting.get("reason", "") in STUCK:
        return _exited({}, stuck(waiting))
    return None


def stuck(waiting: Mapping[str, Any]) -> str:
    """A container's waiting reason in words (``reason: message``): a stuck state's
    detail, and why the egress proxy is not ready."""
    reason = waiting.get("reason", "")
    return f"{reason}: {waiting.get('message') or reason}"


def _exited(terminated: Mapping[str, Any], detail: str | None = None) -> _Seen:
    oom = terminated.get("reason") == "OOMKilled"
    code = int(terminated.get("exitCode", KILLED if oom else 0))
    return _Seen("exited", exit_code=code, oom_killed=oom, detail=detail)
