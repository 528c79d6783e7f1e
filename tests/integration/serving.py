"""Serve an ASGI app with uvicorn on a thread of this process, for one test's while."""

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def served(
    app: Any,
    *,
    sockets: list[socket.socket] | None = None,
    ready: Callable[[], bool] = lambda: True,
    **config: Any,
) -> Iterator[uvicorn.Server]:
    """Run ``app`` (``uvicorn.Config`` options in ``config``, or bound ``sockets``)
    until the block ends; entering waits until it serves and ``ready()`` holds."""
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", **config)
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": sockets}, daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not (server.started and ready()):
        assert thread.is_alive(), "the server did not start"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def port_of(server: uvicorn.Server) -> int:
    """The TCP port a server started with ``port=0`` listens on."""
    port: int = server.servers[0].sockets[0].getsockname()[1]
    return port
