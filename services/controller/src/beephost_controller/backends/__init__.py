"""The backend use cases, on one engine port (``ports.BackendEngine``): a start, its
status (status.py), restarts and stop (lifecycle.py), the supervisor's sweep
(supervise.py), reconciliation (reconcile.py), logs, warm pools and installs."""

from beephost_controller.backends.lifecycle import BackendService
from beephost_controller.backends.status import (
    RESTARTABLE,
    STOPPING,
    exit_reason,
    status_of,
)
from beephost_controller.starts import (
    BackendPlan,
    BackendRequest,
    Minted,
    token_digest,
)

__all__ = [
    "RESTARTABLE",
    "STOPPING",
    "BackendPlan",
    "BackendRequest",
    "BackendService",
    "Minted",
    "exit_reason",
    "status_of",
    "token_digest",
]
