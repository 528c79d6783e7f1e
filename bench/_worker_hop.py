"""The second hop of the two-hop floors: one worker process behind a socketpair.

Usage (by :func:`start_worker` only): python bench/_worker_hop.py FD

The worker is a blocking readline/eval/sendall loop on its end of the socketpair, the
least a worker can do. :class:`WorkerLink` is a server's end: plain protocol callbacks,
requests written at once, replies paired with their askers in order (the worker answers
in order). The two-hop floors (bench/_relay_server.py, and the bare frameworks'
``--hop`` variants) put it behind the leanest server of their wire: what such a floor
costs above its one-hop server is the price of the hop on that framework; what our
backend costs above it is our own.
"""

import asyncio
import collections
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any, cast

_DUMPS = json.JSONEncoder(separators=(",", ":")).encode

Reply = dict[str, Any]


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


def start_worker() -> tuple[socket.socket, subprocess.Popen[bytes]]:
    """A worker process, and the server's end of its socketpair."""
    parent, child = socket.socketpair()
    process = subprocess.Popen(
        [sys.executable, __file__, str(child.fileno())],
        pass_fds=(child.fileno(),),
        stdin=subprocess.DEVNULL,
    )
    child.close()
    return parent, process


class WorkerLink(asyncio.Protocol):
    """The server's end of the socketpair: each reply goes to ``reply_to(asker,
    reply)`` of the request it answers, in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: collections.deque[tuple[Callable[[Any, Reply], None], Any]] = (
            collections.deque()
        )
        self.buffer = b""
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass

    def send(
        self, expression: str, reply_to: Callable[[Any, Reply], None], asker: Any
    ) -> None:
        assert self.transport is not None
        self.waiting.append((reply_to, asker))
        self.transport.write(_DUMPS({"expression": expression}).encode() + b"\n")

    async def evaluate(self, expression: str) -> Any:
        """``expression``'s value, from the worker (raises on its error)."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.send(expression, _resolve, future)
        reply = await future
        if "error" in reply:
            raise RuntimeError(reply["error"]["message"])
        return reply["result"]["value"]

    def data_received(self, data: bytes) -> None:
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        for line in lines:
            reply_to, asker = self.waiting.popleft()
            reply_to(asker, json.loads(line))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            os._exit(1)  # the worker died: so does this bench server


def _resolve(future: "asyncio.Future[Reply]", reply: Reply) -> None:
    if not future.done():
        future.set_result(reply)


async def open_link(parent: socket.socket) -> WorkerLink:
    """The link on the server's end of a started worker's socketpair."""
    loop = asyncio.get_running_loop()
    _, link = await loop.create_unix_connection(WorkerLink, sock=parent)
    return link


if __name__ == "__main__":
    worker(int(sys.argv[1]))
