"""Liveness, readiness and Prometheus metrics."""

from fastapi import APIRouter
from starlette.responses import Response

from beephost_http_backend import probes
from beephost_http_backend.deps import StateDep
from beephost_http_backend.errors import COMMON_ERRORS, documented
from beephost_http_backend.routing import BackendRoute
from beephost_http_backend.schemas import ErrorResponse, Liveness, Readiness
from beephost_protocol import ErrorCode

router = APIRouter(tags=["health"], route_class=BackendRoute)


@router.get("/health", response_model=Liveness, summary="Liveness")
async def health() -> Response:
    """Always 200 while the process serves HTTP; never needs the token."""
    return probes.health()


@router.get(
    "/ready",
    response_model=Readiness,
    responses={
        503: {
            "model": ErrorResponse,
            "description": "`unavailable`: draining, or the default session has no "
            "live worker.",
        }
    },
    summary="Readiness",
)
async def ready(state: StateDep) -> Response:
    """200 when the default session's worker answers and the server is not draining.

    Never needs the token: load balancers and container HEALTHCHECKs probe it.
    """
    return probes.ready(state)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format.",
        },
        # Not drained (only /api/ routes are): no 503.
        **documented(
            common=tuple(set(COMMON_ERRORS) - {ErrorCode.UNAVAILABLE}), json_body=False
        ),
    },
    summary="Prometheus metrics",
)
async def metrics(state: StateDep) -> Response:
    """The core's metrics (transport="http") and HTTP request metrics.

    Needs the token when one is set (Prometheus sends it with ``authorization``).
    """
    # Imported at the first scrape, not with the routes (beephost_core.tallies).
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(
        generate_latest(state.executor.metrics.registry),
        media_type=CONTENT_TYPE_LATEST,
    )
