"""The uvicorn server: bound by us (so port 0 works), draining on SIGTERM."""

import contextlib
import logging
import socket
import sys
from collections.abc import Generator
from types import FrameType

from beephost_core.listeners import bind_tcp, bind_unix
from beephost_http_backend._uvicorn import Config, Server, websocket_protocol
from beephost_http_backend.front import FrontApp
from beephost_http_backend.settings import Settings
from beephost_http_backend.state import BackendState, new_state


class DrainingServer(Server):
    """uvicorn's server, marking the app as draining the moment SIGTERM arrives.

    uvicorn then stops accepting, closes idle connections, gives requests in flight
    ``timeout_graceful_shutdown`` (our drain_timeout) and cancels the rest, which the
    request gate still answers with ``unavailable``.
    """

    def __init__(
        self, config: Config, front: FrontApp, *sockets: socket.socket
    ) -> None:
        super().__init__(config)
        self.front = front
        self.backend = front.backend
        self.sockets = list(sockets)

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        await super().serve(sockets or self.sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # After a signal-triggered shutdown uvicorn re-raises the signal when this
        # context exits, so the process ends by SIGTERM (status 143) as process managers
        # expect. That kills it on the spot: write the buffered log lines first.
        with super().capture_signals():
            try:
                yield
            finally:
                for handler in logging.getLogger().handlers:
                    handler.flush()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: only flip a flag here.
        self.backend.begin_drain()
        super().handle_exit(sig, frame)


def forgo_pydantic_v1() -> None:
    """Make ``import pydantic.v1`` fail in this process, unless it already happened.

    FastAPI imports pydantic.v1 (about 2 MiB, resident for good) only to ask whether a
    route's models are v1 models; when the import fails it answers no, which is right
    here: nothing in the server uses pydantic.v1. Called by ``main()`` alone, since it
    holds for the whole process.
    """
    # None in sys.modules: "import halted" (typeshed types the values as modules).
    sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]


def create_server(
    settings: Settings, state: BackendState | None = None
) -> tuple[DrainingServer, int]:
    """Bind, build the front app over ``state`` (a new one by default) and its uvicorn
    server; returns the server and its port. FastAPI is imported and its app built
    once the server starts (``front.py``).

    ``server.run()`` serves until SIGTERM/SIGINT (in the main thread) or until
    ``server.handle_exit(...)`` is called, draining as described above.
    """
    sock = bind_tcp(settings.host, settings.port)
    # The Unix socket too, if set: the controller's way in from its own container.
    extra = [bind_unix(settings.socket_path)] if settings.socket_path else []
    front = FrontApp(state or new_state(settings))
    config = Config(
        front,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws=websocket_protocol,  # type: ignore[arg-type]  # a factory, as uvicorn calls it
        lifespan="on",
        access_log=False,  # the request gate logs one canonical line per request
        log_config=None,  # logging is configured once, in main()
        # Annotated int, but it goes to asyncio.wait_for, which takes any float.
        timeout_graceful_shutdown=settings.drain_timeout,  # type: ignore[arg-type]
        timeout_keep_alive=int(settings.keep_alive),
        server_header=False,
        # The client in the access log is the TCP peer's. uvicorn's default trusts
        # X-Forwarded-* from 127.0.0.1, where the sandbox's own code runs: it could
        # forge the address (and it cost an ASGI layer per request).
        proxy_headers=False,
    )
    port: int = sock.getsockname()[1]
    return DrainingServer(config, front, sock, *extra), port
