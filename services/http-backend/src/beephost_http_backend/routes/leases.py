"""Leases: renew one, or end it and release the objects it owns in ``default``."""

from typing import Annotated

from fastapi import Path
from starlette.responses import Response

from beephost_http_backend.deps import ExecutorDep
from beephost_http_backend.errors import WORKER_ERRORS
from beephost_http_backend.responses import JSONBytes
from beephost_http_backend.routing import resource_router
from beephost_protocol.models import (
    LeaseRelease,
    LeaseReleased,
    LeaseRenew,
    LeaseRenewed,
)

router, api = resource_router("/api/leases", "leases")

LeasePath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        description="The lease id the client sends as Beephost-Lease.",
    ),
]


@api("PUT", "/{lease}", LeaseRenewed, "Renew a lease")
async def renew_lease(lease: LeasePath, executor: ExecutorDep) -> Response:
    """Keep a lease alive for the server's lease TTL; any id is accepted (idempotent)."""
    return JSONBytes(await executor.run(LeaseRenew(lease=lease)))


@api("DELETE", "/{lease}", LeaseReleased, "Release a lease", WORKER_ERRORS)
async def release_lease(lease: LeasePath, executor: ExecutorDep) -> Response:
    """End a lease now: release the objects it owns in 'default' (safe to repeat)."""
    return JSONBytes(await executor.run(LeaseRelease(lease=lease)))
