"""The controller's effective settings, secrets left out."""

from typing import Any

from beephost_controller.deps import SettingsDep
from beephost_controller.routes import resource_router

router = resource_router("/api/v1", "config")

SECRET_SETTINGS = frozenset({"token"})


@router.get("/config")
def get_config(settings: SettingsDep) -> dict[str, Any]:
    """Every setting by name (as in docs/configuration.md); the token only as set/unset."""
    values = settings.model_dump(mode="json", exclude=set(SECRET_SETTINGS))
    values["token_set"] = settings.token is not None
    return values
