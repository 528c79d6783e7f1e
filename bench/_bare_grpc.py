"""BARE GRPCIO: the generated Executor service's Evaluate, in-process, no worker, no auth.

Usage: python bench/_bare_grpc.py PORT [--hop]

A grpc.aio server on 127.0.0.1:PORT implementing only ``Evaluate`` of
``beephost_pb.exec.v1.exec_pb2_grpc.ExecutorServicer``: ``eval`` in this process, reply
``ValueReply(value_json=json.dumps(value))``. Same setup as beephost-rpc-backend
(GRPC_ENABLE_FORK_SUPPORT=false, uvloop when importable, grpc.so_reuseport 0), so that
the difference is what the backend adds: its servicer, limits, the session worker hop.
With ``--hop``, the two-hop floor of grpc.aio: the handler awaits ``eval`` in one
worker process behind a socketpair (bench/_worker_hop.py), nothing else: what it costs
above the bare server is the hop's price on grpc.aio, which no backend that keeps the
hop can avoid. Stops on SIGTERM or SIGINT.
"""

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

# As the backend does, before grpc is first imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import grpc

from beephost_pb.exec.v1 import exec_pb2, exec_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable
from bench._worker_hop import WorkerLink, open_link, start_worker

_NAMESPACE: dict[str, Any] = {"__name__": "__main__"}


class BareExecutor(exec_pb2_grpc.ExecutorServicer):
    async def Evaluate(
        self,
        request: exec_pb2.EvaluateRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> exec_pb2.ValueReply:
        value = eval(request.expression, _NAMESPACE)
        return exec_pb2.ValueReply(value_json=json.dumps(value))


class HopExecutor(exec_pb2_grpc.ExecutorServicer):
    def __init__(self, link: WorkerLink) -> None:
        self.link = link

    async def Evaluate(
        self,
        request: exec_pb2.EvaluateRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> exec_pb2.ValueReply:
        value = await self.link.evaluate(request.expression)
        return exec_pb2.ValueReply(value_json=json.dumps(value))


async def serve(port: int, worker: socket.socket | None) -> int:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    link = None if worker is None else await open_link(worker)
    # Evaluate only: the rest UNIMPLEMENTED
    servicer = (
        BareExecutor()  # type: ignore[abstract]
        if link is None
        else HopExecutor(link)  # type: ignore[abstract]
    )
    exec_pb2_grpc.add_ExecutorServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if link is not None:
        link.closing = True  # the worker is killed next: no os._exit
    await server.stop(0)
    return 0


def main() -> int:
    port = int(sys.argv[1])
    worker, process = start_worker() if "--hop" in sys.argv[2:] else (None, None)
    try:
        try:
            import uvloop
        except ImportError:
            return asyncio.run(serve(port, worker))
        result: int = uvloop.run(serve(port, worker))
        return result
    finally:
        if process is not None:
            process.kill()
            process.wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
