"""Environments: a runtime plus requirements, built into a content-addressed image."""

from typing import Annotated

from fastapi import Path, Response, status

from beephost_controller.deps import (
    BackendsDep,
    Caller,
    PoolsDep,
    ServiceDep,
    StoreDep,
)
from beephost_controller.egress import refuse_scoped_secrets
from beephost_controller.routes import resource_router
from beephost_controller.rows import EnvironmentRow
from beephost_controller.schemas import NAME_RULE, NAME_SCHEMA, check_name
from beephost_controller.schemas.environments import (
    EnvironmentCreate,
    EnvironmentPublic,
)
from beephost_protocol.errors import InvalidRequest

router = resource_router("/api/v1/environments", "environments")


def environment_public(row: EnvironmentRow) -> EnvironmentPublic:
    return EnvironmentPublic.model_validate(row, from_attributes=True)


def ensured(
    found: tuple[EnvironmentRow, bool], response: Response
) -> EnvironmentPublic:
    """An ensure's reply: 201 when it created the environment, 200 when it was there."""
    row, created = found
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return environment_public(row)


@router.get("")
def list_environments(store: StoreDep) -> list[EnvironmentPublic]:
    return [environment_public(row) for row in store.environments()]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_environment(
    body: EnvironmentCreate, service: ServiceDep, caller: Caller
) -> EnvironmentPublic:
    """Create an environment; its image builds as a job (see `job_id`)."""
    refuse_scoped_secrets(caller, body.egress)
    row, _ = service.create_environment(body, ensure=False)
    return environment_public(row)


@router.post("/admin", responses={201: {"model": EnvironmentPublic}})
def ensure_admin_environment(
    service: ServiceDep, response: Response
) -> EnvironmentPublic:
    """Ensure the admin environment: its backends may manage the controller.

    Its image carries the client SDK; each of its backends gets a controller token
    of its own and the controller's Unix socket. No other environment gets either.
    """
    return ensured(service.ensure_admin_environment(), response)


@router.put("/{name}", responses={201: {"model": EnvironmentPublic}})
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
    caller: Caller,
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
    refuse_scoped_secrets(caller, body.egress)
    return ensured(service.create_environment(body, ensure=True), response)


@router.get("/{name}")
def get_environment(name: str, service: ServiceDep) -> EnvironmentPublic:
    return environment_public(service.environment(name))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_environment(
    name: str, service: ServiceDep, pools: PoolsDep, backends: BackendsDep
) -> None:
    """Forget an environment (and its warm pools' unclaimed backends); its image is
    removed unless another environment with the same content uses it."""
    service.delete_environment(name, drain=pools.drain)
    backends.engine.release_images(service.store.environment_images())
