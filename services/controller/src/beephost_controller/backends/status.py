"""A backend's status from its container's state: pure functions of the engine's view."""

from beephost_controller.ports import ContainerState
from beephost_controller.schemas import BackendStatus, ExitReason

#: The reason of a backend being stopped (status ``stopped``) until its row is deleted.
STOPPING = "stopping"
#: The reason of a backend the controller stopped at the end of its lifetime (``ttl``).
EXPIRED = "expired"
#: The reason of a backend the controller stopped after its idle timeout.
IDLE = "idle"
#: The reason of the backends a controller stopped as it shut down.
SHUTDOWN = "controller shut down"
#: Reasons of a backend the controller stopped on its own: the row stays to say so.
RETIRED: frozenset[str] = frozenset({EXPIRED, IDLE, SHUTDOWN})

#: Exit reasons after which the controller restarts a backend (within the limit).
RESTARTABLE: frozenset[str] = frozenset({"crashed", "oom_killed"})


def exit_reason(state: ContainerState) -> ExitReason:
    """Why an exited container exited: oom_killed, stopped (0 or SIGTERM) or crashed."""
    if state.oom_killed:
        return "oom_killed"
    if state.exit_code in (0, 143):
        return "stopped"
    return "crashed"


def status_of(state: ContainerState | None) -> tuple[BackendStatus, str | None]:
    """(status, reason) of a backend from its container's state."""
    if state is None:
        return "exited", "missing"
    if state.status == "restarting":
        return "starting", "restarting"
    if state.status == "running":
        if state.health == "healthy":
            return "ready", None
        if state.health == "unhealthy":
            return "unhealthy", None
        return "starting", None
    if state.status == "created":
        return "starting", None
    if state.detail is not None:
        return "exited", state.detail
    return "exited", exit_reason(state)
