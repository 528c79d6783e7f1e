"""One router per resource."""

from fastapi import APIRouter

from beephost_controller.deps import Authenticated
from beephost_controller.schemas.errors import ERROR_RESPONSES


def resource_router(prefix: str, tag: str) -> APIRouter:
    """A resource's router: every route takes the token and documents the error
    reply (a route adds its own other replies to ``responses``)."""
    return APIRouter(
        prefix=prefix,
        tags=[tag],
        dependencies=[Authenticated],
        responses=ERROR_RESPONSES,
    )
