"""Entry point: `beephost-http-backend [serve|healthcheck]`.

Imports stay inside the subcommands: ``healthcheck`` runs every few seconds in the
container and must not pay for importing FastAPI and uvicorn.
"""

from typing import TYPE_CHECKING

from beephost_core.entry import exit_with_health, subcommand

if TYPE_CHECKING:
    from beephost_core.early_worker import EarlyWorker
    from beephost_http_backend.server import DrainingServer
    from beephost_http_backend.settings import Settings

#: What serving imports: the image's build records the dataclasses they make
#: (beephost_core.dataclass_code), so that a start need not compile them.
BOOT_MODULES = (
    "beephost_http_backend.settings",
    "beephost_http_backend.server",
    "beephost_http_backend.app",
    "beephost_core.executor",
)


async def serve(
    settings: "Settings", early: "EarlyWorker | None" = None
) -> "DrainingServer":
    """Serve until SIGTERM or SIGINT; returns the server (``started``: whether it did)."""
    import asyncio
    import logging

    from beephost_http_backend.state import new_state

    state = new_state(settings, early=early)
    # The default session's worker boots in its own process while uvicorn and the
    # front are imported; the lifespan's start waits for it.
    state.executor.start_soon()
    await asyncio.sleep(0)
    from beephost_http_backend.server import create_server, forgo_pydantic_v1

    forgo_pydantic_v1()
    server, port = create_server(settings, state)
    logging.getLogger("beephost_http_backend").info(
        "listening on %s:%s", settings.host, port
    )
    await server.serve()
    return server


def main(argv: list[str] | None = None) -> None:
    if subcommand("beephost-http-backend", argv) == "healthcheck":
        from beephost_http_backend.healthcheck import check, idle_note, target

        try:
            healthy, reason = check(*target())
        except ValueError as exc:  # a port that is not a number
            healthy, reason = False, f"bad settings: {exc}"
        exit_with_health(healthy, reason, idle_note())
    import gc
    import logging

    gc.disable()  # until the server settles (beephost_core.memory): a faster start
    from beephost_core import dataclass_code

    dataclass_code.use()  # before the first dataclass is made: the image's, compiled
    from beephost_core.early_worker import start_early
    from beephost_http_backend.healthcheck import ENV_PREFIX

    # It boots while the settings are validated (pydantic's import, most of the wait).
    early = start_early(ENV_PREFIX)
    from beephost_core.boot import without_pydantic_plugins

    without_pydantic_plugins()  # before the settings build pydantic's first model
    import uvloop

    from beephost_http_backend.logs import configure_logging
    from beephost_http_backend.settings import Settings

    settings = Settings()  # validated before anything starts: unsafe values stop here
    configure_logging()
    try:
        server = uvloop.run(serve(settings, early))
    finally:
        logging.shutdown()  # writes the lines still buffered
    if not server.started:
        # Startup failed (no worker could start, say): uvicorn logged why.
        raise SystemExit(3)


if __name__ == "__main__":
    main()
