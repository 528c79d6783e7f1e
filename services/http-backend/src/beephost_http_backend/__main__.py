"""Entry point: `beephost-http-backend [serve|healthcheck]`."""

import argparse
import logging
from types import FrameType

import uvicorn

from beephost_http_backend.app import create_app
from beephost_http_backend.healthcheck import check
from beephost_http_backend.logs import configure_logging
from beephost_http_backend.settings import Settings
from beephost_http_backend.state import BackendState

logger = logging.getLogger("beephost_http_backend")


class DrainingServer(uvicorn.Server):
    """uvicorn's server, marking the app as draining the moment SIGTERM arrives.

    uvicorn then stops accepting, closes idle connections, gives requests in flight
    ``timeout_graceful_shutdown`` (our drain_timeout) and cancels the rest, which the
    request gate still answers with ``unavailable``.
    """

    def __init__(self, config: uvicorn.Config, state: BackendState) -> None:
        super().__init__(config)
        self.backend = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: only flip a flag here.
        self.backend.begin_drain()
        super().handle_exit(sig, frame)


def build_server(settings: Settings) -> DrainingServer:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,  # the request gate logs one canonical line per request
        log_config=None,  # logging is configured once, in main()
        # Annotated int, but it goes to asyncio.wait_for, which takes any float.
        timeout_graceful_shutdown=settings.drain_timeout,  # type: ignore[arg-type]
        timeout_keep_alive=int(settings.keep_alive),
        server_header=False,
    )
    return DrainingServer(config, app.state.backend)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="beephost-http-backend")
    parser.add_argument(
        "command", nargs="?", default="serve", choices=["serve", "healthcheck"]
    )
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "healthcheck":
        healthy, reason = check(settings.host, settings.port)
        print(reason)  # noqa: T201 - the healthcheck's output is its report
        raise SystemExit(0 if healthy else 1)
    configure_logging()
    logger.info("starting on %s:%s", settings.host, settings.port)
    server = build_server(settings)
    server.run()
    if not server.started:
        raise SystemExit(
            3
        )  # startup failed (port taken, no worker): uvicorn logged why


if __name__ == "__main__":
    main()
