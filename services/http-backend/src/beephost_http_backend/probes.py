"""The answers of GET /health and GET /ready, without FastAPI.

The routes (``routes/health.py``) return them, and so does the front while the FastAPI
app is not built (``front.py``): a container's health check probes /ready every few
seconds, and an idle backend must not import FastAPI for it.
"""

from starlette.responses import Response

from beephost_http_backend.errors import error_response
from beephost_http_backend.responses import JSONBytes
from beephost_http_backend.state import BackendState
from beephost_protocol.errors import Unavailable

HEALTH = "/health"
READY = "/ready"


def health() -> Response:
    return JSONBytes({"status": "ok"})


def ready(state: BackendState) -> Response:
    if state.draining:
        return error_response(Unavailable("the server is shutting down"))
    if not state.executor.ready:
        return error_response(Unavailable("no live worker"))
    return JSONBytes({"ready": True})


def answer(path: str, state: BackendState) -> Response | None:
    """The response of GET ``path`` if it is a probe's, else None."""
    if path == HEALTH:
        return health()
    if path == READY:
        return ready(state)
    return None
