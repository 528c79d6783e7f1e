"""The route class of every router (strict JSON bodies), and the methods for Allow.

FastAPI parses bodies with ``json.loads``, which takes ``NaN`` and ``Infinity``: the
pipe and gRPC backends refuse them, so this one does too.
"""

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

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
