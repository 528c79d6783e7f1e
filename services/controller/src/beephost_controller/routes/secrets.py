"""Stored secrets: set, list and forget; a value goes in and never comes out."""

from typing import Annotated

from fastapi import Path, Response, status

from beephost_controller.deps import RedactorDep, SecretsDep
from beephost_controller.routes import resource_router
from beephost_controller.schemas import NAME_RULE, NAME_SCHEMA
from beephost_controller.schemas.egress import SecretPublic, SecretPut
from beephost_controller.secret_store import StoredSecret

router = resource_router("/api/v1/secrets", "secrets")

SecretName = Annotated[
    str,
    Path(description=f"The secret's name: {NAME_RULE}.", json_schema_extra=NAME_SCHEMA),
]


def secret_public(secret: StoredSecret) -> SecretPublic:
    return SecretPublic(name=secret.name, updated_at=secret.updated_at)


@router.get("")
def list_secrets(secrets: SecretsDep) -> list[SecretPublic]:
    """Every stored secret's name and when it was set; never a value."""
    return [secret_public(secret) for secret in secrets.listing()]


@router.put("/{name}", responses={201: {"model": SecretPublic}})
def put_secret(
    name: SecretName,
    body: SecretPut,
    secrets: SecretsDep,
    redactor: RedactorDep,
    response: Response,
) -> SecretPublic:
    """Set a secret (201: a new one, 200: its value replaced).

    An egress policy names it; the egress proxy puts its value into a header of the
    requests to that destination. The value is never returned nor logged.
    """
    # Known to the log filter before anything could log it.
    redactor.add(body.value)
    stored, created = secrets.put(name, body.value)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return secret_public(stored)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_secret(name: SecretName, secrets: SecretsDep) -> None:
    """Forget a secret; a start whose policy names it is refused from then on."""
    secrets.delete(name)
