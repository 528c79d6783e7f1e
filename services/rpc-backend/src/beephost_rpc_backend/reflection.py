"""Server reflection as ``grpc.reflection.v1`` and ``grpc.reflection.v1alpha``.

grpcio-reflection (1.85) serves only v1alpha, and current tools (grpcurl, grpcui,
Postman) ask v1 first. The two have the same messages, field for field
(grpc/reflection/v1/reflection.proto), so protobuf's wire form is the same: v1 is the
v1alpha servicer under the v1 name. Its descriptor, a renamed copy of v1alpha's, goes
into the pool so that v1 can describe itself too.
"""

from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection as v1alpha
from grpc_reflection.v1alpha import reflection_pb2 as messages
from grpc_reflection.v1alpha import reflection_pb2_grpc

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE_NAME: str = v1alpha.SERVICE_NAME
SERVICE_NAMES = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)

_V1_FILE = "grpc/reflection/v1/reflection.proto"
_V1ALPHA_PACKAGE = ".grpc.reflection.v1alpha."
_V1_PACKAGE = ".grpc.reflection.v1."


def enable(server: "grpc.aio.Server", service_names: tuple[str, ...]) -> None:
    """Serve reflection, both versions, listing ``service_names`` and themselves."""
    pool = descriptor_pool.Default()
    _add_v1_descriptor(pool)
    servicer: Any = v1alpha.aio.ReflectionServicer(  # type: ignore[attr-defined]  # untyped upstream
        (*service_names, *SERVICE_NAMES), pool=pool
    )
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=messages.ServerReflectionRequest.FromString,
        response_serializer=messages.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                V1_SERVICE_NAME, {"ServerReflectionInfo": handler}
            ),
        )
    )


def _add_v1_descriptor(pool: descriptor_pool.DescriptorPool) -> None:
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
