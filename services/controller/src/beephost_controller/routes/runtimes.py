"""Runtimes: the CPython versions offered, and their base images."""

from fastapi import status

from beephost_controller.deps import ServiceDep
from beephost_controller.routes import resource_router
from beephost_controller.schemas.environments import RuntimeInit, RuntimePublic
from beephost_controller.schemas.jobs import JobPublic

router = resource_router("/api/v1/runtimes", "runtimes")


@router.get("")
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


@router.post("/init", status_code=status.HTTP_202_ACCEPTED)
def init_runtime(body: RuntimeInit, service: ServiceDep) -> JobPublic:
    """Ensure a runtime's base image (a job: pull by digest or build from Debian)."""
    return JobPublic.model_validate(
        service.init_runtime(body.python), from_attributes=True
    )
