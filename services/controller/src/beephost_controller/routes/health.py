"""Liveness, readiness and metrics (open: probes and scrapers carry no token)."""

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from beephost_controller.deps import PoolsDep, StoreDep
from beephost_protocol.errors import Unavailable

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "unavailable"}})
def ready(request: Request, store: StoreDep) -> dict[str, str]:
    """The store answers and start-up reconciliation is done."""
    if not request.app.state.system.reconciled:
        raise Unavailable("reconciling containers after start-up")
    _ = store.schema_version
    return {"status": "ready"}


@router.get("/metrics", response_class=Response)
def metrics(request: Request, pools: PoolsDep) -> Response:
    pools.refresh_gauges()
    return Response(
        generate_latest(request.app.state.metrics.registry),
        media_type=CONTENT_TYPE_LATEST,
    )
