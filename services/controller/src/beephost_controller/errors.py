"""The one exception handler: taxonomy errors to status codes via the protocol's table."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from beephost_protocol.errors import HTTP_STATUS, BeepHostError, ErrorCode

_CODE_BY_STATUS = {status: code for code, status in HTTP_STATUS.items()}


def error_response(
    error: BeepHostError, headers: dict[str, str] | None = None
) -> JSONResponse:
    status = HTTP_STATUS[ErrorCode(error.wire_code)]
    return JSONResponse({"error": error.to_wire()}, status_code=status, headers=headers)


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
        code = _CODE_BY_STATUS.get(exc.status_code)
        if code is None:
            code = (
                ErrorCode.INTERNAL
                if exc.status_code >= 500
                else ErrorCode.INVALID_REQUEST
            )
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        body = {
            "code": code.value,
            "message": message,
            "data": {"status": exc.status_code},
        }
        return JSONResponse(
            {"error": body}, status_code=exc.status_code, headers=exc.headers
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
