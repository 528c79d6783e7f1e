"""The request gate: auth, drain, body size, metrics and one log line per request.

A plain ASGI wrapper around the whole app (not BaseHTTPMiddleware): it costs one
function call per request, and it can refuse a request before anything reads its body.
That is why the token is checked here rather than in a FastAPI dependency, which would
run only after the body was read and parsed: an unauthenticated client must not make the
server read 32 MiB. It also serves the fast lane (``fastlane.py``) and, when the drain
runs out, answers the requests uvicorn cancels.
"""

import asyncio
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from beephost_core.tokens import TokenCheck
from beephost_http_backend.errors import (
    ERROR_CODE_KEY,
    CarriedError,
    error_response,
    status_of,
)
from beephost_http_backend.fastlane import FastLane
from beephost_http_backend.logs import AccessEntry, log_access
from beephost_http_backend.responses import encode
from beephost_http_backend.state import BackendState
from beephost_protocol.errors import (
    BeepHostError,
    InternalError,
    InvalidRequest,
    TooLarge,
    Unauthorized,
    Unavailable,
    declared_body_too_large,
)

#: The status of a body that is not JSON (an `invalid_request` on the wire).
UNSUPPORTED_MEDIA_TYPE = 415

#: The file routes' prefix: their bodies are any bytes, bounded by the workspace's quota.
FILE_ROUTE = "/api/files/"
PUBLIC_PATHS = frozenset({"/health", "/ready"})
DOCS_PATHS = frozenset({"/docs", "/openapi.json"})


class RequestGate:
    """Every HTTP request passes here first, and its one log line is written here."""

    def __init__(self, app: ASGIApp, state: BackendState, fast: FastLane) -> None:
        self.app = app
        self.state = state
        self.fast = fast
        settings = state.settings
        self.expected = settings.token_check()
        self.public = PUBLIC_PATHS | (DOCS_PATHS if settings.public_docs else set())
        self.limit = settings.max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        authorization = length = content_type = deadline = lease = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                # Two are ambiguous (which one would a proxy have checked?): refused
                # as invalid, as the gRPC backend does.
                authorization = value if authorization is None else b""
            elif name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value
            elif name == b"x-beephost-timeout":
                deadline = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"beephost-lease":
                lease = value
        progress = _Progress(send)
        metrics = self.state.metrics
        metrics.in_progress.inc()
        try:
            file_body = path.startswith(FILE_ROUTE)  # any bytes, bounded by the quota
            refusal = self._refusal(path, authorization, length, file_body) or (
                None
                if file_body
                else _not_json(
                    path, content_type, chunked or length not in (None, b"0")
                )
            )
            if refusal is not None:
                scope[ERROR_CODE_KEY] = refusal.wire_code
                await error_response(refusal, status=_own_status(refusal))(
                    scope, receive, progress.send
                )
                return
            if (
                length is None
                and scope["method"] not in ("GET", "HEAD")
                and not file_body
            ):
                receive = _Counting(receive, self.limit).receive
            elif (
                content_type is not None
                and _is_plain_json(content_type)
                and path in self.fast.lanes
                and scope["method"] == "POST"
            ):
                await self.fast.serve(
                    path, scope, receive, progress.send, deadline, lease, self.app
                )
                return
            if scope["method"] == "DELETE" and (
                (released := self.fast.released_lease(path)) is not None
            ):
                await self.fast.release(
                    released, scope, receive, progress.send, self.app
                )
                return
            if scope["method"] == "HEAD":
                await self._head(scope, receive, progress.send)
                return
            await self.app(scope, receive, progress.send)
        except asyncio.CancelledError:
            # Only the server cancels a request: the drain ran out. Answer it anyway.
            if not self.state.draining:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            scope[ERROR_CODE_KEY] = "unavailable"
            await progress.abandon(
                scope,
                Unavailable(
                    "the server shut down before the request finished; its outcome "
                    "is unknown"
                ),
            )
        except Exception as exc:
            # A bug. Inside FastAPI, ServerErrorMiddleware has answered and re-raises it;
            # from the fast lane nothing has: answer here. uvicorn logs the traceback.
            if not progress.status:
                scope[ERROR_CODE_KEY] = "internal"
                error = InternalError(f"{type(exc).__name__}: {exc}")
                await error_response(error)(scope, receive, progress.send)
            progress.status = progress.status or 500
            raise
        finally:
            metrics.in_progress.dec()
            self._record(scope, path, progress, time.perf_counter() - started)

    async def _head(self, scope: Scope, receive: Receive, send: Send) -> None:
        # HEAD is GET without the body (RFC 9110, 9.3.2), and FastAPI routes list GET
        # only: route it as GET. uvicorn reads the method from this scope, still HEAD,
        # and sends no body.
        routed = {**scope, "method": "GET"}
        try:
            await self.app(routed, receive, send)
        finally:
            for key in ("route", ERROR_CODE_KEY):
                if key in routed:
                    scope[key] = routed[key]

    def _refusal(
        self,
        path: str,
        authorization: bytes | None,
        length: bytes | None,
        file_body: bool,
    ) -> BeepHostError | None:
        if path in self.public:
            return None
        if self.expected is not None and not _bearer_matches(
            authorization, self.expected
        ):
            reason = "missing" if authorization is None else "invalid"
            return Unauthorized(f"{reason} token: send 'Authorization: Bearer <token>'")
        if self.state.draining and path.startswith("/api/"):
            return Unavailable("the server is shutting down; retry on another")
        return None if file_body else declared_body_too_large(length, self.limit)

    def _record(
        self, scope: Scope, path: str, progress: "_Progress", seconds: float
    ) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or (
            path if path in PUBLIC_PATHS else "unmatched"
        )
        method: str = scope["method"]
        self.state.metrics.observe(method, template, progress.status, seconds)
        client = scope.get("client")
        log_access(
            AccessEntry(
                time.time(),
                method,
                path,
                template,
                progress.status,
                scope.get(ERROR_CODE_KEY),
                round(seconds * 1000, 3),
                progress.sent,
                client[0] if client else None,
            )
        )


class _Progress:
    """Watches what was sent, so a cancelled request can still be answered properly."""

    __slots__ = ("_send", "finished", "ndjson", "sent", "status")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 0
        self.sent = 0
        self.ndjson = False
        self.finished = False

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.ndjson = any(
                name == b"content-type" and value.startswith(b"application/x-ndjson")
                for name, value in message.get("headers", ())
            )
        elif kind == "http.response.body":
            self.sent += len(message.get("body", b""))
            self.finished = not message.get("more_body", False)
        await self._send(message)

    async def abandon(self, scope: Scope, error: BeepHostError) -> None:
        if self.finished:
            return
        if not self.status:
            await error_response(error)(scope, _no_receive, self.send)
        elif self.ndjson:
            # The stream started: the error is its last line, the status stays 200.
            line = encode({"error": error.to_wire()}) + b"\n"
            await self.send({"type": "http.response.body", "body": line})
            await self.send({"type": "http.response.body", "body": b""})
        else:
            await self.send({"type": "http.response.body", "body": b""})
        self.status = self.status or status_of(error)


class _Counting:
    """Counts body bytes of a request that announced no length (chunked)."""

    __slots__ = ("_receive", "limit", "size")

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self.limit = limit
        self.size = 0

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                raise CarriedError(
                    TooLarge(
                        f"request body exceeds the {self.limit}-byte limit",
                        {"limit": self.limit},
                    )
                )
        return message


async def _no_receive() -> Any:
    raise RuntimeError("an error response reads no body")


def _bearer_matches(authorization: bytes | None, expected: TokenCheck) -> bool:
    # The scheme is case-insensitive (RFC 9110, 11.1); the token is compared in
    # constant time whatever its length or content.
    if authorization is None:
        return False
    scheme, _, presented = authorization.partition(b" ")
    matches = expected.matches(presented.strip())
    return matches and scheme.lower() == b"bearer"


def _not_json(
    path: str, content_type: bytes | None, has_body: bool
) -> BeepHostError | None:
    # Every API body is JSON. Refused before the body is read, naming the type, rather
    # than read and then failed by validation as "not a valid dictionary".
    if not has_body or not path.startswith("/api/"):
        return None
    media = (content_type or b"").partition(b";")[0].strip().lower()
    if media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    ):
        return None
    shown = media.decode("latin-1") or "none"
    message = f"the body must be JSON (Content-Type: application/json), not {shown}"
    detail = {"loc": ["header", "content-type"], "msg": message, "type": "media_type"}
    return InvalidRequest(
        message, {"status": UNSUPPORTED_MEDIA_TYPE, "errors": [detail]}
    )


def _own_status(error: BeepHostError) -> int | None:
    # A body that is not JSON is 415 (HTTP clients and tools know it), still
    # `invalid_request` on the wire; every other refusal's status is the table's.
    return UNSUPPORTED_MEDIA_TYPE if error.data.get("status") == 415 else None


def _is_plain_json(content_type: bytes) -> bool:
    return content_type == b"application/json" or content_type.startswith(
        b"application/json;"
    )
