"""Registering handlers: a stand-in for a grpc server that keeps what generated code
registers, and the base of a handler that finds its methods itself."""

from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    from beephost_rpc_backend.auth import Handler

    GenericHandler = grpc.GenericRpcHandler[Any, Any]
else:
    GenericHandler = grpc.GenericRpcHandler  # generic only in grpc-stubs


class HandlerTable:
    """Stands in for the server in a generated ``add_*Servicer_to_server``: keeps the
    handler table of each service, so that its handlers can be changed, or registered
    later, before they serve."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Handler]] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        pass  # the same table comes to add_registered_method_handlers

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, "Handler"]
    ) -> None:
        self.tables[service] = handlers
