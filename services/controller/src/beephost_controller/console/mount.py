"""The console put on the controller's app: its routes, its static files, its
headers, and its errors as pages (the API's handlers answer everything else)."""

import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from beephost_controller.console import (
    backend_pages,
    environment_pages,
    pages,
    playground,
)
from beephost_controller.console.auth import SignInRequired, Viewer, current_session
from beephost_controller.console.render import page
from beephost_controller.console.security_headers import PREFIX, ConsoleHeaders
from beephost_controller.console.sessions import SessionStore
from beephost_controller.settings import Settings
from beephost_protocol.errors import HTTP_STATUS, BeepHostError, ErrorCode

Handler = Callable[[Request, Exception], Awaitable[Response]]
#: What Starlette keeps: a handler may be sync or async (errors.py's are async).
AnyHandler = Callable[[Request, Any], Response | Awaitable[Response]]

#: A title per status the console's error pages show.
TITLES = {
    400: "That did not work",
    401: "Refused",
    404: "Not found",
    409: "Not now",
    413: "Too large",
    503: "Unavailable",
}


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the console at ``/console`` on ``app``. Called last: it wraps the API's
    exception handlers for the console's paths, and its headers' middleware goes
    outside the gate's, so that the gate's refusals carry them too."""
    app.state.console_sessions = SessionStore(settings.console_session_ttl)
    app.state.console_tabs = playground.TabSessions()
    for module in (pages, environment_pages, backend_pages, playground):
        app.include_router(module.router)
    app.mount(
        f"{PREFIX}/static",
        StaticFiles(directory=Path(__file__).parent / "static"),
        name="console-static",
    )
    for kind in (BeepHostError, HTTPException, RequestValidationError, Exception):
        api_handler = app.exception_handlers[kind]
        app.add_exception_handler(kind, _console_or(api_handler))
    app.add_middleware(ConsoleHeaders)


def _wants_page(request: Request) -> bool:
    path = request.url.path
    under = path == PREFIX or path.startswith(PREFIX + "/")
    return under and "application/json" not in request.headers.get("accept", "")


def _console_or(api_handler: AnyHandler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if not _wants_page(request):
            answer = api_handler(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        if isinstance(exc, SignInRequired) and request.method in ("GET", "HEAD"):
            target = quote(request.url.path, safe="/")
            return RedirectResponse(f"/console/sign-in?next={target}", status_code=303)
        status, message = _status_and_message(exc)
        session = current_session(request)
        return page(
            request,
            "error.html",
            Viewer(session) if session else None,
            status_code=status,
            title=TITLES.get(status, "Something went wrong"),
            message=message,
        )

    return handle


def _status_and_message(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, BeepHostError):
        return HTTP_STATUS[ErrorCode(exc.wire_code)], exc.message
    if isinstance(exc, HTTPException):
        if exc.status_code == 404:
            return 404, "There is no such page in the console."
        return exc.status_code, str(exc.detail)
    if isinstance(exc, RequestValidationError):
        return 400, "The form was not filled in as expected."
    return 500, "An unexpected error: the controller's log has the details."
