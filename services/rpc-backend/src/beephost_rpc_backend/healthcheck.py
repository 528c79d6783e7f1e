"""`beephost-rpc-backend healthcheck`: exit 0 when the standard health Check says SERVING."""

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# A server bound to every interface is probed over loopback.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1", "": "127.0.0.1"}


def check(host: str, port: int, timeout: float = 3.0) -> tuple[bool, str]:
    """Ask the overall health ("") of the server at host:port; return (healthy, reason)."""
    host = _WILDCARDS.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            name = code.name if code is not None else type(exc).__name__
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            return False, f"{name}: {details}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, status
