"""BARE GRPCIO: the generated Executor service's Evaluate, in-process, no worker, no auth.

Usage: python bench/_bare_grpc.py PORT

A grpc.aio server on 127.0.0.1:PORT implementing only ``Evaluate`` of
``beephost_pb.exec.v1.exec_pb2_grpc.ExecutorServicer``: ``eval`` in this process, reply
``ValueReply(value_json=json.dumps(value))``. Same setup as beephost-rpc-backend
(GRPC_ENABLE_FORK_SUPPORT=false, uvloop when importable, grpc.so_reuseport 0), so that
the difference is what the backend adds: its servicer, limits, the session worker hop.
Stops on SIGTERM or SIGINT.
"""

import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import Any

# As the backend does, before grpc is first imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import grpc

from beephost_pb.exec.v1 import exec_pb2, exec_pb2_grpc

_NAMESPACE: dict[str, Any] = {"__name__": "__main__"}


class BareExecutor(exec_pb2_grpc.ExecutorServicer):
    async def Evaluate(
        self,
        request: exec_pb2.EvaluateRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> exec_pb2.ValueReply:
        value = eval(request.expression, _NAMESPACE)
        return exec_pb2.ValueReply(value_json=json.dumps(value))


async def serve(port: int) -> int:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    exec_pb2_grpc.add_ExecutorServicer_to_server(
        BareExecutor(),  # type: ignore[abstract]  # Evaluate only: the rest UNIMPLEMENTED
        server,
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0)
    return 0


def main() -> int:
    port = int(sys.argv[1])
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(port))
    result: int = uvloop.run(serve(port))
    return result


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
