"""A direct path for the hottest routes, POST /api/eval and POST /api/exec, and for
DELETE /api/leases/{lease}, which every SDK client sends when it closes.

FastAPI's per-request machinery (routing through nested routers, dependency solving,
parameter extraction, the exception and exit-stack middlewares) costs about as much
server time as the worker round trip itself. For these two routes the request gate
answers well-formed requests directly: it validates the body with the same model,
builds the command with the same function (``commands.py``), runs it on the same
executor and encodes the same bytes. Anything it is not sure about (another content
type, a chunked body, a body or header that does not validate) is replayed into the
FastAPI app unchanged, so every error response still comes from one place. None of it
needs FastAPI: the server answers these routes while FastAPI is still being imported
(``front.py``), so a client's first evaluation and its close do not wait for it.
"""

from collections.abc import Awaitable, Callable
from typing import NamedTuple

from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from beephost_http_backend.commands import eval_command, exec_command, parse_deadline
from beephost_http_backend.errors import (
    ERROR_CODE_KEY,
    error_response,
    log_lost_worker,
)
from beephost_http_backend.responses import encode_forwarded
from beephost_http_backend.schemas import ExecRequest
from beephost_http_backend.state import BackendState
from beephost_protocol.errors import BeepHostError
from beephost_protocol.models import Command, Evaluate, LeaseRelease

Decoder = Callable[[bytes, float | None], Command]

_JSON_HEADERS = [(b"content-type", b"application/json")]


def _decode_eval(raw: bytes, deadline: float | None) -> Command:
    return eval_command(Evaluate.model_validate_json(raw), deadline)


def _decode_exec(raw: bytes, deadline: float | None) -> Command:
    return exec_command(ExecRequest.model_validate_json(raw), deadline)


class LaneRoute(NamedTuple):
    """What the access log and the metrics read of ``scope["route"]``: its path (the
    routed requests' is FastAPI's APIRoute of the same path and name)."""

    path: str
    name: str


LEASES = "/api/leases/"
_RELEASE = LaneRoute(LEASES + "{lease}", "release_lease")
_LEASE_MAX = 200  # the route's path parameter's max_length


class FastLane:
    def __init__(self, state: BackendState) -> None:
        self.state = state
        self.lanes: dict[str, tuple[LaneRoute, Decoder]] = {
            "/api/eval": (LaneRoute("/api/eval", "evaluate"), _decode_eval),
            "/api/exec": (LaneRoute("/api/exec", "execute"), _decode_exec),
        }

    @staticmethod
    def released_lease(path: str) -> str | None:
        """The lease of a ``DELETE /api/leases/{lease}`` path the lane can take."""
        lease = path[len(LEASES) :] if path.startswith(LEASES) else ""
        return lease if 0 < len(lease) <= _LEASE_MAX and "/" not in lease else None

    async def release(
        self,
        lease: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        fallback: Callable[[Scope, Receive, Send], Awaitable[None]],
    ) -> None:
        try:
            command = LeaseRelease(lease=lease)
        except ValidationError:
            await fallback(scope, receive, send)
            return
        scope["route"] = _RELEASE
        await self._answer(command, None, scope, receive, send)

    async def serve(
        self,
        path: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        deadline_header: bytes | None,
        lease_header: bytes | None,
        fallback: Callable[[Scope, Receive, Send], Awaitable[None]],
    ) -> None:
        route, decode = self.lanes[path]
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        deadline = None
        if deadline_header is not None:
            deadline = parse_deadline(deadline_header)
        try:
            if deadline_header is not None and deadline is None:
                raise ValueError("invalid X-Beephost-Timeout")
            if b"NaN" in raw or b"Infinity" in raw:
                # pydantic's JSON reads them; the routed path tells a constant (not
                # JSON) from the same letters in a string.
                raise ValueError("maybe a non-finite constant")
            command = decode(raw, deadline)
        except (ValidationError, ValueError):
            await fallback(scope, _Replay(raw, receive).receive, send)
            return
        scope["route"] = route  # for the access log and the metrics' route label
        lease = None if lease_header is None else lease_header.decode("latin-1")
        await self._answer(command, lease, scope, receive, send)

    async def _answer(
        self,
        command: Command,
        lease: str | None,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        try:
            # The worker's result text, forwarded as it wrote it where it can be.
            result = await self.state.executor.run(command, lease=lease, raw=True)
        except BeepHostError as exc:
            log_lost_worker(scope, exc, getattr(command, "session", None))
            scope[ERROR_CODE_KEY] = exc.wire_code
            await error_response(exc)(scope, receive, send)
            return
        body = encode_forwarded(result)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    *_JSON_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _Replay:
    """Hands the already-read body to the FastAPI app, then the real receive."""

    __slots__ = ("_body", "_receive")

    def __init__(self, body: bytes, receive: Receive) -> None:
        self._body: bytes | None = body
        self._receive = receive

    async def receive(self) -> Message:
        if self._body is None:
            return await self._receive()
        body, self._body = self._body, None
        return {"type": "http.request", "body": body, "more_body": False}
