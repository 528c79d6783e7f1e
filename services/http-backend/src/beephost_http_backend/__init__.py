"""Beep Python Host HTTP backend: FastAPI over the execution core."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from beephost_http_backend.app import create_app
    from beephost_http_backend.settings import Settings

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy: `python -m beephost_http_backend healthcheck` imports this package first,
    # and must not import FastAPI for it.
    if name == "create_app":
        from beephost_http_backend.app import create_app

        return create_app
    if name == "Settings":
        from beephost_http_backend.settings import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
