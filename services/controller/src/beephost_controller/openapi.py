"""The OpenAPI document as served: FastAPI's, without the responses that never happen."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def install(app: FastAPI) -> None:
    """Serve :func:`document` as /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document minus its 422 responses.

    FastAPI documents a 422 for every route with parameters; here malformed input is a
    400 ``invalid_request`` (errors.py), which ERROR_RESPONSES documents instead.
    """
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = schema.get("components", {}).get("schemas", {})
    for name in _VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    return schema
