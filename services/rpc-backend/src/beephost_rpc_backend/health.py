"""Standard health (``grpc.health.v1.Health``), its servicer built at the first call.

grpc_health's messages (``health_pb2``: protobuf builds their descriptors at import)
cost the rpc backend's cold start about 30 ms of its imports in a fresh container, for
a service nothing asks at once: Docker's health check first runs 5 s after the start,
and the controller's readiness probe asks ``info``. So, as reflection does
(reflection.py), the handler is built when a health call first comes. The statuses set
before then are kept here and handed to grpc_health's servicer before it answers, so a
call sees the same statuses either way.
"""

from typing import Any

import grpc

from beephost_rpc_backend.handler_table import GenericHandler, HandlerTable

SERVICE_NAME = "grpc.health.v1.Health"
#: The module whose descriptors describe the service (for reflection).
MESSAGES_MODULE = "grpc_health.v1.health_pb2"
# health.proto's ServingStatus values, fixed by the protocol (tests check them against
# health_pb2's): without them the statuses could not be set before its import.
SERVING = 1
NOT_SERVING = 2


class LazyHealth(GenericHandler):
    """The health service: ``set`` and ``enter_graceful_shutdown`` as grpc_health's aio
    ``HealthServicer`` has them, which is built, and given the statuses so far, when
    the first health call comes."""

    def __init__(self) -> None:
        # grpc_health's servicer starts with the whole server ("") SERVING.
        self._statuses: dict[str, int] = {"": SERVING}
        self._shutting_down = False
        self._servicer: Any = None  # grpc_health's, once handed over
        self._handlers: GenericHandler | None = None
        self._prefix = f"/{SERVICE_NAME}/"

    async def set(self, service: str, status: int) -> None:
        """Set ``service``'s status ("" for the whole server); ignored once shut down."""
        if self._servicer is not None:
            await self._servicer.set(service, status)
        elif not self._shutting_down:
            self._statuses[service] = status

    async def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING from now on, whatever is set later."""
        if self._servicer is not None:
            await self._servicer.enter_graceful_shutdown()
        elif not self._shutting_down:
            self._shutting_down = True
            self._statuses = dict.fromkeys(self._statuses, NOT_SERVING)

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> "grpc.RpcMethodHandler[Any, Any] | None":
        if not handler_call_details.method.startswith(self._prefix):
            return None  # another service's
        if self._handlers is None:  # the server calls this on its one event loop
            self._handlers = self._build()
        return self._handlers.service(handler_call_details)

    def _build(self) -> GenericHandler:
        from grpc_health.v1 import health_pb2_grpc
        from grpc_health.v1.health import aio  # type: ignore[attr-defined]  # grpc-stubs 1.53 predates health.aio

        table = HandlerTable()
        stand_in: Any = table  # typed as a server by the generated code's stubs
        health_pb2_grpc.add_HealthServicer_to_server(
            _HandedOver(self, aio.HealthServicer()), stand_in
        )
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME, table.tables[SERVICE_NAME]
        )

    async def hand_over(self, servicer: Any) -> Any:
        """grpc_health's servicer, given the statuses set so far (once)."""
        if self._servicer is None:
            # No call has watched the new servicer yet: its sets do not wait.
            for service, status in self._statuses.items():
                await servicer.set(service, status)
            if self._shutting_down:
                await servicer.enter_graceful_shutdown()
            self._servicer = servicer
        return self._servicer


class _HandedOver:
    """grpc_health's servicer, each call after the hand-over."""

    def __init__(self, lazy: LazyHealth, servicer: Any) -> None:
        self.lazy, self.servicer = lazy, servicer

    async def Check(self, request: Any, context: Any) -> Any:
        return await (await self.lazy.hand_over(self.servicer)).Check(request, context)

    async def Watch(self, request: Any, context: Any) -> None:
        await (await self.lazy.hand_over(self.servicer)).Watch(request, context)

    async def List(self, request: Any, context: Any) -> Any:
        # grpc_health's aio servicer has no List: its generated base's answer.
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
