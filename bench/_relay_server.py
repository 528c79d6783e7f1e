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
import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from typing import Any, cast

_DUMPS = json.JSONEncoder(separators=(",", ":")).encode


def worker(fd: int) -> None:
    """The worker: a blocking loop on its end of the socketpair."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    sock = socket.socket(fileno=fd)
    send = sock.sendall
    with sock, sock.makefile("rb", buffering=1 << 16) as reader:
        for line in reader:
            message = json.loads(line)
            try:
                reply = {"result": {"value": eval(message["expression"], namespace)}}
            except Exception as exc:
                reply = {"error": {"code": "execution_failed", "message": repr(exc)}}
            send(_DUMPS(reply).encode() + b"\n")


class WorkerLink(asyncio.Protocol):
    """The server's end of the socketpair; replies go back to whoever asked, in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: collections.deque[tuple[asyncio.Transport, Any]] = (
            collections.deque()
        )
        self.buffer = b""
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(
            asyncio.Transport, transport
        )  # uvloop's are not subclasses

    def send(self, client: asyncio.Transport, request_id: Any, expression: str) -> None:
        assert self.transport is not None
        self.waiting.append((client, request_id))
        self.transport.write(_DUMPS({"expression": expression}).encode() + b"\n")

    def data_received(self, data: bytes) -> None:
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        for line in lines:
            client, request_id = self.waiting.popleft()
            reply = json.loads(line)
            reply = {"id": request_id, **reply}
            if not client.is_closing():
                client.write(_DUMPS(reply).encode() + b"\n")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            os._exit(1)  # the worker died: so does this bench server


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
                self.link.send(self.transport, message["id"], expression)
            else:
                reply = {"id": message["id"], "result": {"pong": True, "ready": True}}
                self.transport.write(_DUMPS(reply).encode() + b"\n")


async def serve(path: str, parent: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    _, link = await loop.create_unix_connection(WorkerLink, sock=parent)
    server = await loop.create_unix_server(lambda: ClientConnection(link), path=path)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        link.closing = True
        server.close()


def main() -> None:
    if sys.argv[1] == "--worker":
        worker(int(sys.argv[2]))
        return
    path = sys.argv[1]
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    parent, child = socket.socketpair()
    process = subprocess.Popen(
        [sys.executable, __file__, "--worker", str(child.fileno())],
        pass_fds=(child.fileno(),),
        stdin=subprocess.DEVNULL,
    )
    child.close()
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
