"""UVICORN'S TWO-HOP FLOOR: the leanest ASGI eval endpoint, awaiting a worker process.

Usage: python bench/_bare_asgi.py PORT

A plain ASGI callable (no framework: no routing, no validation, no middleware) on the
same uvicorn configuration as beephost-http-backend (uvloop, httptools, no access
log): ``POST /api/eval`` reads the JSON body, awaits ``eval`` of its ``expression`` in
one worker process behind a socketpair (bench/_worker_hop.py) and answers
``{"value": ...}``; ``GET /ready`` answers once the worker is linked. Our HTTP backend
serves its hot routes on uvicorn past FastAPI (its fast lane): no server on uvicorn
that keeps the hop can be faster than this.
"""

import json
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable
from bench._bare_fastapi import serve
from bench._worker_hop import WorkerLink, open_link, start_worker

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_HEADERS = [(b"content-type", b"application/json")]


class HopApp:
    def __init__(self, worker: socket.socket) -> None:
        self.worker = worker
        self.link: WorkerLink | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["path"] == "/api/eval" and self.link is not None:
            body = b""
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            value = await self.link.evaluate(json.loads(body)["expression"])
            await _answer(send, 200, json.dumps({"value": value}).encode())
        elif scope["path"] == "/ready":
            await _answer(send, 200, b'{"ready":true}')
        else:
            await _answer(send, 404, b'{"detail":"Not Found"}')

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.link = await open_link(self.worker)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.link is not None:
                    self.link.closing = True  # the worker is killed next: no os._exit
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    worker, process = start_worker()
    try:
        serve(HopApp(worker), int(sys.argv[1]))
    finally:
        process.kill()
        process.wait()


if __name__ == "__main__":
    main()
