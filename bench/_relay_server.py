"""The TWO-HOP FLOOR: the leanest asyncio server that runs code in a worker process.

Usage: python bench/_relay_server.py SOCKET_PATH

Same architecture as the pipe backend, nothing else: a uvloop (or asyncio) server
decodes each request line, forwards it over a socketpair to one worker process (a
blocking readline/eval/sendall loop), decodes the worker's reply and writes the answer
to the client. Plain protocol callbacks: no streams, no tasks, no validation, no
metrics, no locks. The worker answers in order, so a FIFO pairs replies with requests.
What the pipe backend costs above this row is overhead of its implementation; what this
row costs above the one-hop floor is the price of the second hop itself.
"""

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable
from bench._worker_hop import WorkerLink, open_link, start_worker

_DUMPS = json.JSONEncoder(separators=(",", ":")).encode


def _answer(asker: tuple[asyncio.Transport, Any], reply: dict[str, Any]) -> None:
    client, request_id = asker
    if not client.is_closing():
        client.write(_DUMPS({"id": request_id, **reply}).encode() + b"\n")


class ClientConnection(asyncio.Protocol):
    def __init__(self, link: WorkerLink) -> None:
        self.link = link
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(
            asyncio.Transport, transport
        )  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        for line in lines:
            message = json.loads(line)
            if message.get("type") == "eval":
                expression = message["params"]["expression"]
                self.link.send(expression, _answer, (self.transport, message["id"]))
            else:
                reply = {"id": message["id"], "result": {"pong": True, "ready": True}}
                self.transport.write(_DUMPS(reply).encode() + b"\n")


async def serve(path: str, parent: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    link = await open_link(parent)
    server = await loop.create_unix_server(lambda: ClientConnection(link), path=path)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        link.closing = True
        server.close()


def main() -> None:
    path = sys.argv[1]
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    parent, process = start_worker()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(path, parent))
    else:
        uvloop.run(serve(path, parent))
    finally:
        process.kill()
        process.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError, ConnectionResetError):
        main()
