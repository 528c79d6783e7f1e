"""The application factory: ``create_app(settings, executor=None)``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from beephost_core import Executor
from beephost_core.boot import distribution_version
from beephost_http_backend import handlers
from beephost_http_backend.deps import LEASE_HEADER, LEASE_PATTERN
from beephost_http_backend.disconnect import CancelOnDisconnect
from beephost_http_backend.fastlane import FastLane
from beephost_http_backend.middleware import RequestGate
from beephost_http_backend.routes import (
    code,
    docs,
    files,
    fs,
    health,
    leases,
    objects,
    sessions,
)
from beephost_http_backend.settings import Settings
from beephost_http_backend.state import BackendState, new_state, serving
from beephost_protocol import build_models
from beephost_protocol.schema import value_definitions

VERSION = distribution_version("beephost-http-backend")

DESCRIPTION = """\
Runs Python code in remote sessions over HTTP/JSON. Values are JSON with `$`-tags for
what JSON cannot say (the `Value` schema; the value table is docs/protocol/pipe.md,
section 8): sets, complex numbers, Decimal, datetime types, UUIDs and paths are
tagged, numpy's scalars are numbers, other objects are `$handle`s carrying their
repr (and, for the reply's own value, their rich `bundle`). Every error is
`{"error": {"code", "message", "data"}}` with the status of its code
(docs/protocol/errors.md). When the server has a token, every route except /health and
/ready needs `Authorization: Bearer <token>`.
"""

TAGS = [
    {"name": "code", "description": "Evaluate expressions and run statements."},
    {"name": "sessions", "description": "Sessions: one worker process each."},
    {"name": "objects", "description": "Objects kept in a session, by handle."},
    {
        "name": "leases",
        "description": "Leases: objects a client created in 'default' are released "
        "when its lease expires or is released.",
    },
    {
        "name": "files",
        "description": "The workspace: its user code's working directory. Files' bytes "
        "on /api/files/{path} (PUT, GET with ranges), the rest on /api/fs/.",
    },
    {"name": "health", "description": "Liveness, readiness and metrics."},
]


class BackendApp(FastAPI):
    """FastAPI behind the request gate, with the bearer scheme in its OpenAPI document.

    The gate wraps the whole app rather than sitting in its middleware stack: it refuses
    requests and serves the fast lane before any of FastAPI's layers run (each costs a
    little on every request), and it sees every answer, including a 500 from a bug.
    """

    backend: BackendState
    gate: ASGIApp  # CancelOnDisconnect(RequestGate(...))
    _fixed_schema: dict[str, Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.gate(scope, receive, send)

    async def call_fastapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        schema = super().openapi()  # cached by FastAPI until the routes change
        if schema is not self._fixed_schema:
            _fix_schema(schema, secured=self.backend.settings.requires_token)
            self._fixed_schema = schema
        return schema


_ERROR_REF = "#/components/schemas/ErrorResponse"
_VALUE_REF = "#/components/schemas/Value"
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def _fix_schema(schema: dict[str, Any], secured: bool) -> None:
    # FastAPI files every response of a route under the route's media type: the
    # stream's error responses are JSON, not NDJSON, and a $ref needs no "type".
    # It also documents its own 422 for every route with parameters: here a bad
    # request is a 400 invalid_request (errors.py), so that 422 never happens.
    # The token is checked by the request gate, not by a FastAPI security dependency,
    # so the bearer scheme is declared here.
    components = schema.setdefault("components", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.get("schemas", {}).pop(name, None)
    _point_values_at_value_table(components.setdefault("schemas", {}))
    if secured:
        components["securitySchemes"] = {
            "bearerAuth": {"type": "http", "scheme": "bearer"}
        }
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            if secured and path not in ("/health", "/ready"):
                operation["security"] = [{"bearerAuth": []}]
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "X-Beephost-Timeout":
                    # An absent header is the null: as a value, "null" is no number.
                    parameter["schema"] = {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "title": "X-Beephost-Timeout",
                    }
                elif parameter.get("name") == LEASE_HEADER or (
                    parameter.get("name") == "lease" and parameter.get("in") == "path"
                ):
                    # What the core accepts (it refuses the rest in words); for the
                    # header, an absent one is the null: "null" is no lease id.
                    parameter["schema"] = {
                        "type": "string",
                        "pattern": LEASE_PATTERN,
                        "title": parameter["name"],
                    }
                elif parameter.get("in") == "header":
                    _absent_is_null(parameter)
            responses = operation.get("responses", {})
            fastapi_422 = responses.get("422", {}).get("content", {})
            if (
                fastapi_422.get("application/json", {}).get("schema", {}).get("$ref")
                == _FASTAPI_422
            ):
                del responses["422"]
            for response in responses.values():
                content = response.get("content", {})
                for media in list(content):
                    item = content[media].get("schema", {})
                    if "$ref" in item:
                        item.pop("type", None)
                    if item.get("$ref") == _ERROR_REF and media != "application/json":
                        content["application/json"] = content.pop(media)


def _absent_is_null(parameter: dict[str, Any]) -> None:
    """An optional header's schema without its null: a header is absent or a string,
    and the text "null" is no value of it."""
    schema = parameter.get("schema", {})
    choices = [c for c in schema.get("anyOf", []) if c.get("type") != "null"]
    if len(choices) == 1 and len(choices) < len(schema["anyOf"]):
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        parameter["schema"] = {**choices[0], **rest}


def _point_values_at_value_table(schemas: dict[str, Any]) -> None:
    # The models type wire values as Any; here they get the value table's schema
    # (docs/protocol/pipe.md, section 8): JSON plus the "$" tags, one definition each.
    schemas.update(value_definitions("#/components/schemas/"))
    value = {"$ref": _VALUE_REF}
    for model in schemas.values():
        for name, prop in model.get("properties", {}).items():
            if name == "value" and "type" not in prop and "$ref" not in prop:
                prop.update(value)
            elif name == "args" and prop.get("type") == "array":
                prop["items"] = value
            elif name in ("kwargs", "locals") and prop.get("type") == "object":
                prop["additionalProperties"] = value


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with serving(app.state.backend):
        yield


def _operation_id(route: APIRoute) -> str:
    return route.name


def create_app(
    settings: Settings | None = None, executor: Executor | None = None
) -> FastAPI:
    """Build the app over ``executor`` (a new one from ``settings`` by default), the
    request gate in front of it; its lifespan starts the executor and closes it, so pass
    one that is not started. The server serves ``front.FrontApp`` instead, which builds
    the same FastAPI app in a thread while it already answers the fast lane.
    """
    state = new_state(settings or Settings(), executor)
    app = build_app(state)
    gate = RequestGate(app.call_fastapi, state, FastLane(state))
    app.gate = CancelOnDisconnect(gate)
    return app


def build_app(state: BackendState) -> BackendApp:
    """FastAPI and its routes over ``state``, without the gate (which calls it through
    ``call_fastapi``). Its lifespan runs only when the app is served itself."""
    # Before FastAPI reads the wire models for its routes: a deferred one would make
    # its request body a reference that OpenAPI generation cannot annotate.
    build_models()
    app = BackendApp(
        title="Beep Python Host HTTP backend",
        version=VERSION,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        openapi_url=None,  # served by routes/docs.py, behind the token unless public
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.backend = state
    app.state.backend = state
    handlers.install(app)
    routers = (code, sessions, objects, leases, files, fs, health)
    for router in (module.router for module in routers):
        app.include_router(router)
    app.include_router(docs.router)
    return app
