"""Annotated dependencies: the objects the lifespan put on app.state, and auth."""

import hmac
from typing import Annotated

from fastapi import Depends, Request

from beephost_controller.service import ControllerService
from beephost_controller.settings import Settings
from beephost_controller.store import SqliteStore
from beephost_protocol.errors import Unauthorized


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _service(request: Request) -> ControllerService:
    service: ControllerService = request.app.state.service
    return service


def _store(request: Request) -> SqliteStore:
    store: SqliteStore = request.app.state.store
    return store


def require_token(request: Request) -> None:
    """Bearer-token auth, constant-time; open only when no token is configured."""
    settings: Settings = request.app.state.settings
    if settings.token is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    expected = settings.token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        expected, presented.encode()
    ):
        raise Unauthorized("a valid bearer token is required")


SettingsDep = Annotated[Settings, Depends(_settings)]
ServiceDep = Annotated[ControllerService, Depends(_service)]
StoreDep = Annotated[SqliteStore, Depends(_store)]
Authenticated = Depends(require_token)
