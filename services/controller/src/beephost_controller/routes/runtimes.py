"""Runtimes: the CPython versions offered, and their base images."""

from fastapi import APIRouter, status

from beephost_controller.deps import Authenticated, ServiceDep
from beephost_controller.schemas.environments import RuntimeInit, RuntimePublic
from beephost_controller.schemas.errors import ERROR_RESPONSES
from beephost_controller.schemas.jobs import JobPublic

router = APIRouter(
    prefix="/api/v1/runtimes", tags=["runtimes"], dependencies=[Authenticated]
)


@router.get("", response_model=list[RuntimePublic], responses=ERROR_RESPONSES)
def list_runtimes(service: ServiceDep) -> list[RuntimePublic]:
    """The CPython versions offered, with the exact version once initialised."""
    return [
        RuntimePublic(
            python=python,
            version=row.version if row else None,
            image=row.image if row else None,
            source=row.source if row else None,
            initialised=row is not None,
        )
        for python, row in service.runtimes()
    ]


@router.post(
    "/init",
    response_model=JobPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=ERROR_RESPONSES,
)
def init_runtime(body: RuntimeInit, service: ServiceDep) -> JobPublic:
    """Ensure a runtime's base image (a job: pull by digest or build from Debian)."""
    return JobPublic.model_validate(
        service.init_runtime(body.python), from_attributes=True
    )
