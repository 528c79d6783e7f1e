"""The one exception handler: taxonomy errors to status codes via the protocol's table."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from beephost_controller.service import Conflict
from beephost_protocol.errors import HTTP_STATUS, BeepHostError, ErrorCode


def error_response(
    error: BeepHostError, headers: dict[str, str] | None = None
) -> JSONResponse:
    status = (
        409 if isinstance(error, Conflict) else HTTP_STATUS[ErrorCode(error.wire_code)]
    )
    return JSONResponse({"error": error.to_wire()}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(BeepHostError)
    async def _taxonomy(request: Request, exc: BeepHostError) -> JSONResponse:
        headers = (
            {"WWW-Authenticate": "Bearer"} if exc.wire_code == "unauthorized" else None
        )
        return error_response(exc, headers)

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
