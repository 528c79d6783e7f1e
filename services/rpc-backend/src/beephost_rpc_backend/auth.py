"""Bearer-token authentication as a server interceptor: fail closed, compare in constant time."""

from __future__ import annotations  # grpc's classes are generic only in grpc-stubs

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import grpc

from beephost_core.tokens import TokenCheck
from beephost_protocol.errors import BeepHostError, Unauthorized
from beephost_rpc_backend import errors

MISSING = "this server requires a token: send metadata 'authorization: Bearer <token>'"
INVALID = "invalid token"

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]
    Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    Interceptor = grpc.aio.ServerInterceptor


def check_token(expected: TokenCheck, metadata: Sequence[Any] | None) -> str | None:
    """Why the call's metadata fails authentication, or None if it passes."""
    values = [value for key, value in metadata or () if key == "authorization"]
    if not values:
        return MISSING
    if len(values) > 1:
        return INVALID  # ambiguous: which one would a proxy have checked?
    scheme, _, presented = str(values[0]).partition(" ")
    # Compare even when the scheme is wrong, so that timing says nothing either way.
    matches = expected.matches(presented)
    return None if matches and scheme.lower() == "bearer" else INVALID


class TokenAuth(Interceptor):
    """Refuses calls without the right token, except to the ``open_services``.

    Health and reflection stay open so that probes and tools need no secret.
    """

    def __init__(
        self,
        token: TokenCheck,
        open_services: Iterable[str],
        on_reject: Callable[[str, BeepHostError, str], None] = lambda *_: None,
    ) -> None:
        self._expected = token
        self._open = tuple(f"/{name}/" for name in open_services)
        self._on_reject = on_reject

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(details)
        # None (an unknown method) passes through and becomes UNIMPLEMENTED.
        if handler is None or details.method.startswith(self._open):
            return handler
        problem = check_token(self._expected, details.invocation_metadata)
        if problem is None:
            return handler
        error = Unauthorized(problem)
        method = details.method

        def refused(peer: str) -> None:
            self._on_reject(method, error, peer)

        return _refusing(handler, error, refused)


def _refusing(
    handler: Handler, error: BeepHostError, on_call: Callable[[str], None]
) -> Handler:
    """A handler of the same kind that answers every call with ``error``.

    ``on_call`` hears of each call with its peer, which only the call's context knows.
    """

    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        on_call(context.peer())
        await errors.abort(context, error)

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    build: Any = kinds[(handler.request_streaming, handler.response_streaming)]
    refused: Handler = build(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
    return refused
