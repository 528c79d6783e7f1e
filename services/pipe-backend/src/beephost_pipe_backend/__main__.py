"""Entry point: `beephost-pipe-backend [serve|healthcheck]`.

Docker runs ``healthcheck`` every 5 s in each container: the top of this module imports
only what it needs, and ``serve`` the rest (asyncio alone was 50 ms of its 120 ms of
CPU).
"""

from typing import TYPE_CHECKING

from beephost_core.entry import exit_with_health, subcommand

if TYPE_CHECKING:
    from beephost_core.early_worker import EarlyWorker
    from beephost_pipe_backend.settings import Settings

#: What serving imports: the image's build records the dataclasses they make
#: (beephost_core.dataclass_code), so that a start need not compile them.
BOOT_MODULES = (
    "beephost_pipe_backend.settings",
    "beephost_pipe_backend.server",
    "beephost_core.executor",
)


async def serve(settings: "Settings", early: "EarlyWorker | None" = None) -> int:
    import asyncio
    import contextlib
    import logging
    import signal
    import time

    from beephost_core import CoreMetrics, Executor
    from beephost_core.logs import log_ready
    from beephost_core.memory import settle_later
    from beephost_protocol.errors import BeepHostError

    logger = logging.getLogger("beephost_pipe_backend")
    metrics = CoreMetrics("pipe")
    executor = Executor(settings.executor_config(), metrics, early)
    started = time.perf_counter()
    # The default session's worker boots in its own process while the server is
    # imported and starts listening.
    executor.start_soon()
    await asyncio.sleep(0)
    from beephost_pipe_backend.server import PipeServer

    server = PipeServer(settings, executor)
    try:
        # Listen first: a client connects at once, its requests wait for the worker
        # and ping says not ready until then (a cold start waited for both in turn).
        await server.start()
    except (RuntimeError, OSError) as exc:  # another server's socket, or no access
        logger.error("cannot listen on %s: %s", settings.socket_path, exc)
        await executor.aclose()
        return 1
    try:
        await executor.start()
    except BeepHostError as exc:
        logger.error("cannot start the executor: %s", exc.message)
        await server.close()
        await executor.aclose()
        return 1
    metrics.serve(settings.metrics_port, settings.metrics_host)
    log_ready(logger, started, settings.environment)
    settle_later()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve_forever())
    await stop.wait()
    logger.info("shutting down: draining for up to %ss", settings.drain_timeout)
    serving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving
    await server.close(settings.drain_timeout)
    await executor.aclose()
    return 0


def main(argv: list[str] | None = None) -> None:
    if subcommand("beephost-pipe-backend", argv) == "healthcheck":
        from beephost_pipe_backend.healthcheck import check_from_environment, idle_note

        exit_with_health(*check_from_environment(), idle_note())
    import asyncio
    import gc

    gc.disable()  # until the server settles (beephost_core.memory): a faster start
    from beephost_core import dataclass_code

    dataclass_code.use()  # before the first dataclass is made: the image's, compiled
    from beephost_core.early_worker import start_early
    from beephost_pipe_backend.healthcheck import ENV_PREFIX

    # It boots while the settings are validated (pydantic's import, most of the wait).
    early = start_early(ENV_PREFIX)
    from beephost_core.boot import without_pydantic_plugins

    without_pydantic_plugins()  # before the settings build pydantic's first model
    from beephost_core.logs import configure_logging
    from beephost_pipe_backend.settings import Settings

    settings = Settings()
    configure_logging()
    try:
        import uvloop
    except ImportError:
        raise SystemExit(asyncio.run(serve(settings, early))) from None
    raise SystemExit(uvloop.run(serve(settings, early)))


if __name__ == "__main__":
    main()
