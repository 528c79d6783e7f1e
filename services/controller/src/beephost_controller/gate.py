"""The request gate: auth and the body limit before any body is read, and HEAD.

A plain ASGI wrapper around the app, as the HTTP backend's (middleware.py there): a
FastAPI dependency runs only after the body was read and parsed, so an unauthenticated
client could make the controller read (and parse) any amount. Here a request to
``/api/`` without a valid token, with two ``Authorization`` headers, or announcing a
body over ``max_request_bytes`` is answered before its body is touched; a body without
a length (chunked) is cut at the limit while it is read.

HEAD is answered like GET without a body (FastAPI routes only the methods they name).
The gate also counts every request (metrics.py), by route template and status: as a
plain ASGI wrapper, not BaseHTTPMiddleware, whose task group would wrap the body
limit's error in an ExceptionGroup that FastAPI answers as a 400.
"""

from fastapi import HTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from beephost_controller.deps import caller_of
from beephost_controller.errors import error_response
from beephost_protocol.errors import (
    BeepHostError,
    Unauthorized,
    declared_body_too_large,
)


class BodyTooLarge(HTTPException):
    """Raised while a body without Content-Length is read: FastAPI re-raises an
    HTTPException from body parsing as it is (any other error becomes a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the {limit}-byte limit")


class RequestGate:
    """Every request passes here before routing."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, status = scope["method"], 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._gate(scope, receive, watched)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            state = getattr(scope.get("app"), "state", None)
            metrics = getattr(state, "metrics", None)
            if metrics is not None:
                metrics.requests.labels(method, path, str(status)).inc()

    async def _gate(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(scope)
        if refusal is not None:
            headers = (
                {"WWW-Authenticate": "Bearer"}
                if isinstance(refusal, Unauthorized)
                else None
            )
            await error_response(refusal, headers)(scope, receive, send)
            return
        if scope["method"] == "HEAD" and self._has_get(scope):
            # A copy: the server's own scope must still say HEAD (uvicorn then sends
            # no body); the route routing found is copied back for the metrics.
            as_get = {**scope, "method": "GET"}
            try:
                await self.app(as_get, receive, _without_body(send))
            finally:
                scope["route"] = as_get.get("route")
            return
        if not _header(scope, b"content-length") and scope["method"] not in (
            "GET",
            "HEAD",
        ):
            receive = _counting(receive, self.limit)
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> BeepHostError | None:
        authorizations = [v for k, v in scope["headers"] if k == b"authorization"]
        if len(authorizations) > 1:
            # Which one would a proxy have checked? Refused, as the backends do.
            return Unauthorized(
                "ambiguous credentials: send one Authorization header, not "
                f"{len(authorizations)}"
            )
        if scope["path"].startswith("/api/"):
            try:
                caller_of(Request(scope))  # kept in the scope for the routes
            except Unauthorized as exc:
                return exc
        return declared_body_too_large(_header(scope, b"content-length"), self.limit)

    def _has_get(self, scope: Scope) -> bool:
        # Starlette puts the application on the scope before its middleware runs.
        routes: list[BaseRoute] = getattr(scope.get("app"), "routes", [])
        as_get = {**scope, "method": "GET"}
        return any(route.matches(as_get)[0] == Match.FULL for route in routes)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _counting(receive: Receive, limit: int) -> Receive:
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise BodyTooLarge(limit)
        return message

    return counted


def _without_body(send: Send) -> Send:
    async def head(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return head
