"""The route class of every router (strict JSON bodies), and the methods for Allow.

FastAPI parses bodies with ``json.loads``, which takes ``NaN`` and ``Infinity``: the
pipe and gRPC backends refuse them, so this one does too.
"""

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from fastapi.types import DecoratedCallable
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from beephost_http_backend.errors import documented
from beephost_protocol import ErrorCode
from beephost_protocol.jsonlines import decode_strict


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                text = body.decode()
                self._json = decode_strict(text)
            except json.JSONDecodeError:
                raise
            except ValueError as exc:  # a non-finite constant, or not UTF-8
                # FastAPI turns JSONDecodeError (only) into a typed invalid_request.
                raise json.JSONDecodeError(str(exc), "", 0) from None
        return self._json


class BackendRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


class Operations:
    """The ``/api/`` operations of one router, each declared in one line: its method,
    path, success model, summary and the error codes it documents beside the common
    ones (``documented``), so every route states its contract the same way."""

    def __init__(self, router: APIRouter) -> None:
        self.router = router

    def __call__(
        self,
        method: str,
        path: str,
        model: type[Any],
        summary: str,
        errors: tuple[ErrorCode, ...] = (),
        *,
        status_code: int | None = None,
        json_body: bool = True,
    ) -> Callable[[DecoratedCallable], DecoratedCallable]:
        return self.router.api_route(
            path,
            methods=[method],
            status_code=status_code,
            response_model=model,
            responses=documented(*errors, json_body=json_body),
            summary=summary,
        )


def resource_router(prefix: str, tag: str) -> tuple[APIRouter, Operations]:
    """The router of one resource's ``/api/`` operations under ``prefix``, its bodies
    read as strict JSON (``BackendRoute``), and the :class:`Operations` declaring them.
    """
    router = APIRouter(prefix=prefix, tags=[tag], route_class=BackendRoute)
    return router, Operations(router)


#: The methods the API could serve; a 405 lists those that some route serves.
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route serves on this scope's path (Starlette names only one)."""
    allowed = []
    for method in _METHODS:
        # A fresh scope: the one routed carries the refusing route's own state.
        probe = {
            "type": "http",
            "path": scope["path"],
            "root_path": scope.get("root_path", ""),
            "method": method,
            "headers": scope.get("headers", []),
        }
        if any(route.matches(probe)[0] == Match.FULL for route in routes):
            allowed.append(method)
    if "GET" in allowed:
        allowed.insert(allowed.index("GET") + 1, "HEAD")  # the gate serves it as GET
    return allowed
