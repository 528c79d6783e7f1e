"""Environments: a runtime plus requirements, built into a content-addressed image."""

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from beephost_controller.deps import (
    Authenticated,
    BackendsDep,
    PoolsDep,
    ServiceDep,
    StoreDep,
)
from beephost_controller.schemas import NAME_RULE, NAME_SCHEMA, check_name
from beephost_controller.schemas.environments import (
    EnvironmentCreate,
    EnvironmentPublic,
)
from beephost_controller.schemas.errors import ERROR_RESPONSES
from beephost_protocol.errors import InvalidRequest

router = APIRouter(
    prefix="/api/v1/environments", tags=["environments"], dependencies=[Authenticated]
)


@router.get("", response_model=list[EnvironmentPublic], responses=ERROR_RESPONSES)
def list_environments(store: StoreDep) -> list[EnvironmentPublic]:
    return [
        EnvironmentPublic.model_validate(row, from_attributes=True)
        for row in store.environments()
    ]


@router.post(
    "",
    response_model=EnvironmentPublic,
    status_code=status.HTTP_201_CREATED,
    responses=ERROR_RESPONSES,
)
def create_environment(
    body: EnvironmentCreate, service: ServiceDep
) -> EnvironmentPublic:
    """Create an environment; its image builds as a job (see `job_id`)."""
    row, _ = service.create_environment(body, ensure=False)
    return EnvironmentPublic.model_validate(row, from_attributes=True)


@router.post(
    "/admin",
    response_model=EnvironmentPublic,
    responses={**ERROR_RESPONSES, 201: {"model": EnvironmentPublic}},
)
def ensure_admin_environment(
    service: ServiceDep, response: Response
) -> EnvironmentPublic:
    """Ensure the admin environment: its backends may manage the controller.

    Its image carries the client SDK; each of its backends gets a controller token
    of its own and the controller's Unix socket. No other environment gets either.
    """
    row, created = service.ensure_admin_environment()
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return EnvironmentPublic.model_validate(row, from_attributes=True)


@router.put(
    "/{name}",
    response_model=EnvironmentPublic,
    responses={**ERROR_RESPONSES, 201: {"model": EnvironmentPublic}},
)
def ensure_environment(
    name: Annotated[
        str,
        Path(
            description=f"The environment's name: {NAME_RULE}.",
            json_schema_extra=NAME_SCHEMA,
        ),
    ],
    body: EnvironmentCreate,
    service: ServiceDep,
    response: Response,
) -> EnvironmentPublic:
    """Idempotent create: returns an existing equal environment (200) or creates it (201).

    The body's `name` must be the path's.
    """
    try:
        check_name(name)
    except ValueError as exc:
        raise InvalidRequest(str(exc), {"name": name}) from None
    if body.name != name:
        raise InvalidRequest(
            f"the name in the path ({name!r}) and the name in the body "
            f"({body.name!r}) differ",
            {"path": name, "body": body.name},
        )
    row, created = service.create_environment(body, ensure=True)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return EnvironmentPublic.model_validate(row, from_attributes=True)


@router.get("/{name}", response_model=EnvironmentPublic, responses=ERROR_RESPONSES)
def get_environment(name: str, service: ServiceDep) -> EnvironmentPublic:
    return EnvironmentPublic.model_validate(
        service.environment(name), from_attributes=True
    )


@router.delete(
    "/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=ERROR_RESPONSES
)
def delete_environment(
    name: str, service: ServiceDep, pools: PoolsDep, backends: BackendsDep
) -> None:
    """Forget an environment (and its warm pools' unclaimed backends); its image is
    removed unless another environment with the same content uses it."""
    service.delete_environment(name, drain=pools.drain)
    backends.code_volumes.remove_unused()
