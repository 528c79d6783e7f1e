"""The controller's effective settings, secrets left out."""

from typing import Any

from fastapi import APIRouter

from beephost_controller.deps import Authenticated, SettingsDep
from beephost_controller.schemas.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["config"], dependencies=[Authenticated])

SECRET_SETTINGS = frozenset({"token"})


@router.get("/config", responses=ERROR_RESPONSES)
def get_config(settings: SettingsDep) -> dict[str, Any]:
    """Every setting by name (as in docs/configuration.md); the token only as set/unset."""
    values = settings.model_dump(mode="json", exclude=set(SECRET_SETTINGS))
    values["token_set"] = settings.token is not None
    return values
