"""BARE FASTAPI: the idiomatic FastAPI eval endpoint, in-process, no worker, no auth.

Usage: python bench/_bare_fastapi.py PORT [--hop]

Served by the same uvicorn configuration as beephost-http-backend (uvloop, httptools,
no access log), so that the difference is what the backend adds: the request gate,
the session worker hop and its error handling. With ``--hop``, the two-hop floor of
FastAPI: the endpoint awaits ``eval`` in one worker process behind a socketpair
(bench/_worker_hop.py), nothing else: what it costs above the bare endpoint is the
hop's price on FastAPI, which no backend that keeps the hop can avoid.
"""

import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable
from bench._worker_hop import WorkerLink, open_link, start_worker

_NAMESPACE: dict[str, Any] = {"__name__": "__main__"}


class EvalBody(BaseModel):
    expression: str


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/api/eval")
    async def evaluate(body: EvalBody) -> dict[str, Any]:
        return {"value": eval(body.expression, _NAMESPACE)}

    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    return app


def create_hop_app(worker: socket.socket) -> FastAPI:
    links: list[WorkerLink] = []  # the link is made on the server's loop

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        links.append(await open_link(worker))
        yield
        links[0].closing = True  # the worker is killed next: no os._exit

    app = FastAPI(lifespan=lifespan)

    @app.post("/api/eval")
    async def evaluate(body: EvalBody) -> dict[str, Any]:
        return {"value": await links[0].evaluate(body.expression)}

    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": bool(links)}

    return app


def serve(app: Any, port: int) -> None:
    """``app`` on 127.0.0.1:``port``, on the HTTP backend's uvicorn configuration."""
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        server_header=False,
    )


def main() -> None:
    worker, process = start_worker() if "--hop" in sys.argv[2:] else (None, None)
    try:
        serve(
            create_app() if worker is None else create_hop_app(worker),
            int(sys.argv[1]),
        )
    finally:
        if process is not None:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
