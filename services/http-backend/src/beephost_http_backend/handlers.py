"""FastAPI's exception handlers: every error it raises answered through ``errors.py``.

Apart from ``errors.py`` because they need FastAPI, which the request gate and the fast
lane do not import: the server answers them while FastAPI is still being imported.
"""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from beephost_http_backend.errors import (
    ERROR_CODE_KEY,
    CarriedError,
    error_response,
    invalid_request,
    log_lost_worker,
)
from beephost_http_backend.routing import allowed_methods
from beephost_protocol import BeepHostError
from beephost_protocol.errors import ERROR_CLASSES, InternalError, framework_refusal


def _remember(request: Request, error: BeepHostError) -> Response:
    request.scope[ERROR_CODE_KEY] = error.wire_code
    return error_response(error)


async def _on_beephost_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BeepHostError)
    log_lost_worker(request.scope, exc)
    return _remember(request, exc)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    # FastAPI answers 422 by default; here a malformed request is invalid_request (400)
    # like on every transport, and the status comes from the one table.
    assert isinstance(exc, RequestValidationError | ValidationError)
    return _remember(request, invalid_request(exc.errors()))


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    # Starlette's own answers: unknown path (404), wrong method (405), body limits.
    assert isinstance(exc, HTTPException)
    if isinstance(exc, CarriedError):
        return _remember(request, exc.error)
    code, message = framework_refusal(
        exc.status_code, str(exc.detail), request.method, request.url.path
    )
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names the methods of the first route on the path only.
        app = request.scope.get("app")
        if app is not None:
            allowed = allowed_methods(app.router.routes, request.scope)
            headers["Allow"] = ", ".join(allowed)
    error = ERROR_CLASSES[code](message, {"status": exc.status_code})
    request.scope[ERROR_CODE_KEY] = error.wire_code
    # 405 keeps its status (the one not from the table): HTTP clients and tools rely on
    # it and on its Allow header (RFC 9110, 15.5.6). The body is still invalid_request.
    status = 405 if exc.status_code == 405 else None
    return error_response(error, headers, status)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # A bug of ours (the core already wraps its own): answer with the error body, and
    # Starlette re-raises so the traceback is logged. Never send the traceback out.
    return _remember(request, InternalError(f"{type(exc).__name__}: {exc}"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(BeepHostError, _on_beephost_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_unexpected)
