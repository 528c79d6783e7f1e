"""The OpenAPI document as served: FastAPI's, without the responses that never happen,
and with the CPython versions this controller offers where a request names one."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
#: Request models whose ``python`` must be one of the settings' ``pythons``.
_PYTHON_FIELDS = ("EnvironmentCreate", "RuntimeInit")


def install(app: FastAPI, pythons: list[str] | None = None) -> None:
    """Serve :func:`document` as /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, pythons)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI, pythons: list[str] | None = None) -> dict[str, Any]:
    """FastAPI's document minus its 422 responses, ``python`` fields as enums.

    FastAPI documents a 422 for every route with parameters; here malformed input is a
    400 ``invalid_request`` (errors.py), which ERROR_RESPONSES documents instead. A
    ``python`` the controller does not offer is refused (400): the document says which
    ones it offers, so a client (or a fuzzer) knows a valid request from an invalid one.
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
    for name in _PYTHON_FIELDS if pythons else ():
        field = schemas.get(name, {}).get("properties", {}).get("python", {})
        for branch in field.get("anyOf", [field]):
            if branch.get("type") == "string":
                branch["enum"] = list(pythons or ())
    return schema
