"""Beep Python Host HTTP backend: FastAPI over the execution core."""

from beephost_http_backend.app import create_app
from beephost_http_backend.settings import Settings

__all__ = ["Settings", "create_app"]
