"""Server reflection as ``grpc.reflection.v1`` and ``grpc.reflection.v1alpha``.

grpcio-reflection (1.85) serves only v1alpha, and current tools (grpcurl, grpcui,
Postman) ask v1 first. The two have the same messages, field for field
(grpc/reflection/v1/reflection.proto), so protobuf's wire form is the same: v1 is the
v1alpha servicer under the v1 name. Its descriptor, a renamed copy of v1alpha's, goes
into the pool so that v1 can describe itself too.

The servicer is built at the first reflection call, not at start: grpcio-reflection
and protobuf's ``descriptor_pb2`` are about 4 MiB and 60 ms that an idle backend
(a pool's member) would carry for a tool that may never ask. That call pays the
import once.
"""

import importlib
from typing import TYPE_CHECKING, Any

import grpc

from beephost_rpc_backend.handler_table import GenericHandler

if TYPE_CHECKING:
    from google.protobuf import descriptor_pool

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE_NAME = "grpc.reflection.v1alpha.ServerReflection"
SERVICE_NAMES = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)
_METHOD = "ServerReflectionInfo"

_V1_FILE = "grpc/reflection/v1/reflection.proto"
_V1ALPHA_PACKAGE = ".grpc.reflection.v1alpha."
_V1_PACKAGE = ".grpc.reflection.v1."


def enable(
    server: "grpc.aio.Server",
    service_names: tuple[str, ...],
    descriptors: tuple[str, ...] = (),
) -> None:
    """Serve reflection, both versions, listing ``service_names`` and themselves;
    ``descriptors`` names modules the server imports only when first called, whose
    descriptors describe some of those services (imported with reflection's)."""
    names = (*service_names, *SERVICE_NAMES)
    server.add_generic_rpc_handlers((LazyReflection(names, descriptors),))


class LazyReflection(GenericHandler):
    """Both versions' one method, its servicer built when it is first called."""

    def __init__(
        self, service_names: tuple[str, ...], descriptors: tuple[str, ...] = ()
    ) -> None:
        self.service_names = service_names
        self.descriptors = descriptors
        self.handler: grpc.RpcMethodHandler[Any, Any] | None = None
        self._methods = {f"/{name}/{_METHOD}" for name in SERVICE_NAMES}

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> "grpc.RpcMethodHandler[Any, Any] | None":
        if handler_call_details.method not in self._methods:
            return None  # another service's, or an unknown version: UNIMPLEMENTED
        if self.handler is None:  # the server calls this on its one event loop
            for module in self.descriptors:  # into protobuf's default pool
                importlib.import_module(module)
            self.handler = build_handler(self.service_names)
        return self.handler


def build_handler(service_names: tuple[str, ...]) -> "grpc.RpcMethodHandler[Any, Any]":
    """The v1alpha servicer's handler, which serves v1's identical messages too."""
    from google.protobuf import descriptor_pool
    from grpc_reflection.v1alpha import reflection as v1alpha
    from grpc_reflection.v1alpha import reflection_pb2 as messages

    pool = descriptor_pool.Default()
    _add_v1_descriptor(pool)
    servicer: Any = v1alpha.aio.ReflectionServicer(  # type: ignore[attr-defined]  # untyped upstream
        service_names, pool=pool
    )
    return grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=messages.ServerReflectionRequest.FromString,
        response_serializer=messages.ServerReflectionResponse.SerializeToString,
    )


def _add_v1_descriptor(pool: "descriptor_pool.DescriptorPool") -> None:
    from google.protobuf import descriptor_pb2
    from grpc_reflection.v1alpha import reflection_pb2 as messages

    try:
        pool.FindFileByName(_V1_FILE)
        return  # another server in this process added it
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    messages.DESCRIPTOR.CopyToProto(proto)
    proto.name = _V1_FILE
    proto.package = _V1_PACKAGE.strip(".")
    proto.ClearField("options")  # java_package and friends name v1alpha
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):  # setting it empty would mark it set
                field.type_name = field.type_name.replace(_V1ALPHA_PACKAGE, _V1_PACKAGE)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(_V1ALPHA_PACKAGE, _V1_PACKAGE)
            method.output_type = method.output_type.replace(
                _V1ALPHA_PACKAGE, _V1_PACKAGE
            )
    pool.AddSerializedFile(proto.SerializeToString())
