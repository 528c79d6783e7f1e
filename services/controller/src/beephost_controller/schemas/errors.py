"""The error reply every route documents: ``{"error": {code, message, data}}``."""

from pydantic import Field

from beephost_controller.schemas import ApiModel


class ErrorDetail(ApiModel):
    code: str
    message: str
    data: dict[str, object] = Field(default_factory=dict)


class ErrorResponse(ApiModel):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorResponse, "description": "invalid_request"},
    401: {"model": ErrorResponse, "description": "unauthorized"},
    404: {"model": ErrorResponse, "description": "not_found"},
    409: {"model": ErrorResponse, "description": "conflict"},
    429: {"model": ErrorResponse, "description": "quota_exceeded"},
    500: {"model": ErrorResponse, "description": "internal"},
    503: {"model": ErrorResponse, "description": "unavailable"},
}
