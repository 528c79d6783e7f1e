"""Backends on Docker: a start planned (plan.py) and applied, their status
(status.py), restarts and stop (lifecycle.py), and reconciliation (reconcile.py)."""

from beephost_controller.backends.host_ports import HOST_PORTS, free_port
from beephost_controller.backends.lifecycle import BackendService
from beephost_controller.backends.plan import (
    ADMIN_CONTROLLER_URL,
    LABEL_BACKEND_ID,
    LABEL_BACKEND_TYPE,
    LABEL_ENVIRONMENT,
    LABEL_RELAY_FOR,
    PORT_ATTEMPTS,
    BackendPlan,
    BackendRequest,
    Minted,
    plan,
    token_digest,
)
from beephost_controller.backends.status import (
    RESTARTABLE,
    STOPPING,
    exit_reason,
    status_of,
)
from beephost_controller.images.labels import LABEL_CONTROLLER, LABEL_MANAGED

__all__ = [
    "ADMIN_CONTROLLER_URL",
    "HOST_PORTS",
    "LABEL_BACKEND_ID",
    "LABEL_BACKEND_TYPE",
    "LABEL_CONTROLLER",
    "LABEL_ENVIRONMENT",
    "LABEL_MANAGED",
    "LABEL_RELAY_FOR",
    "PORT_ATTEMPTS",
    "RESTARTABLE",
    "STOPPING",
    "BackendPlan",
    "BackendRequest",
    "BackendService",
    "Minted",
    "exit_reason",
    "free_port",
    "plan",
    "status_of",
    "token_digest",
]
