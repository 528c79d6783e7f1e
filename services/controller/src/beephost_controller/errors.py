"""The exception handlers: taxonomy errors to status codes via the protocol's table,
and every other failure to the same error body (never a text/plain 500)."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from beephost_controller.ports import ContainerEngineError
from beephost_protocol.errors import (
    HTTP_STATUS,
    BeepHostError,
    ErrorCode,
    InternalError,
    Unavailable,
    framework_refusal,
)

logger = logging.getLogger(__name__)


def error_response(
    error: BeepHostError, headers: dict[str, str] | None = None
) -> JSONResponse:
    status = HTTP_STATUS[ErrorCode(error.wire_code)]
    return JSONResponse({"error": error.to_wire()}, status_code=status, headers=headers)


#: The methods any route of the API may serve.
_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (HEAD wherever GET: gate.py).

    Asked of the routes method by method: FastAPI nests included routers, whose
    routes' methods are not listed on the app.
    """
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": "GET" if method == "HEAD" else method}
        if any(r.matches(scope)[0] == Match.FULL for r in request.app.routes):
            allowed.append(method)
    return allowed


def install(app: FastAPI) -> None:
    @app.exception_handler(BeepHostError)
    async def _taxonomy(request: Request, exc: BeepHostError) -> JSONResponse:
        headers = (
            {"WWW-Authenticate": "Bearer"} if exc.wire_code == "unauthorized" else None
        )
        return error_response(exc, headers)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's and FastAPI's own answers (an unknown path, a wrong method, a
        # body that is no JSON it can parse) get the one error body too, not {"detail"}.
        code, message = framework_refusal(
            exc.status_code, str(exc.detail), request.method, request.url.path
        )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route of the path only.
            headers["Allow"] = ", ".join(allowed_methods(request))
        body = {
            "code": code.value,
            "message": message,
            "data": {"status": exc.status_code},
        }
        return JSONResponse(
            {"error": body}, status_code=exc.status_code, headers=headers or None
        )

    @app.exception_handler(ContainerEngineError)
    async def _engine(request: Request, exc: ContainerEngineError) -> JSONResponse:
        # The engine (the Docker daemon, a cluster's API server) failed or is out of
        # reach: the request may succeed again, and nothing of ours is at fault.
        logger.warning(
            "the engine failed on %s %s: %s", request.method, request.url.path, exc
        )
        return error_response(Unavailable(f"the engine failed: {exc}"))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        # The last resort (Starlette's ServerErrorMiddleware calls it, then re-raises
        # the exception, which uvicorn logs with its traceback): a bug still gets the
        # documented error body. The exception's text stays in the server's log.
        logger.error(
            "unexpected %s on %s %s",
            type(exc).__name__,
            request.method,
            request.url.path,
        )
        return error_response(
            InternalError(
                f"unexpected {type(exc).__name__} while serving "
                f"{request.method} {request.url.path}; the controller's log has the "
                "traceback"
            )
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(
        request: Request, exc: RequestValidationError
    ) -> JSONResponse:
        # One table: malformed input is invalid_request (400), never FastAPI's 422.
        errors = [
            {
                "loc": list(e.get("loc", ())),
                "msg": str(e.get("msg")),
                "type": str(e.get("type")),
            }
            for e in exc.errors()
        ]
        summary = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5]
        )
        body = {
            "code": "invalid_request",
            "message": summary,
            "data": {"errors": errors},
        }
        return JSONResponse({"error": body}, status_code=400)
