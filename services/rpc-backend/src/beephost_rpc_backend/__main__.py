"""Entry point: `beephost-rpc-backend [serve|healthcheck]`.

Imports stay inside the subcommands: Docker runs ``healthcheck`` every 5 s in each
container, so it imports neither grpc nor pydantic, nor asyncio (50 ms of its 140 ms of
CPU).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from beephost_core.entry import exit_with_health, subcommand

if TYPE_CHECKING:
    from beephost_core.early_worker import EarlyWorker
    from beephost_rpc_backend.settings import Settings

#: What serving imports: the image's build records the dataclasses they make
#: (beephost_core.dataclass_code), so that a start need not compile them.
BOOT_MODULES = (
    "beephost_rpc_backend.settings",
    "beephost_rpc_backend.server",
    "beephost_core.executor",
)


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


async def serve(settings: Settings, early: EarlyWorker | None = None) -> int:
    import asyncio
    import logging
    import signal
    import time

    from beephost_core import CoreMetrics, Executor
    from beephost_core.logs import log_ready
    from beephost_core.memory import settle_later
    from beephost_protocol.errors import BeepHostError

    logger = logging.getLogger("beephost_rpc_backend")
    metrics = CoreMetrics("grpc")
    executor = Executor(settings.executor_config(), metrics, early)
    started = time.perf_counter()
    # The default session's worker boots in its own process while grpc is imported.
    executor.start_soon()
    await asyncio.sleep(0)
    from beephost_rpc_backend.server import create_server

    try:
        server, port = create_server(settings, executor)
    except RuntimeError as exc:  # grpc could not bind: in use, or not a local address
        logger.error("cannot listen on %s:%s: %s", settings.host, settings.port, exc)
        await executor.aclose()
        return 1
    # Listen first: until the executor is ready, health says NOT_SERVING and calls are
    # answered `unavailable`, so probes see a starting server rather than a dead one.
    await server.start()
    logger.info("listening on %s:%s", settings.host, port)
    if not settings.requires_token and not _is_loopback(settings.host):
        logger.warning(
            "no token is set and %s is not loopback: anyone who can reach the port can run code",
            settings.host,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await executor.start()
    except BeepHostError as exc:
        logger.error("cannot start the executor: %s", exc.message)
        await server.shutdown(0)
        await executor.aclose()
        return 1
    await server.ready()
    metrics.serve(settings.metrics_port, settings.metrics_host)
    log_ready(logger, started, settings.environment)
    settle_later()
    await stop.wait()
    logger.info("shutting down: draining for up to %ss", settings.drain_timeout)
    await server.shutdown(settings.drain_timeout)
    await executor.aclose()
    logger.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> None:
    if subcommand("beephost-rpc-backend", argv) == "healthcheck":
        from beephost_rpc_backend.healthcheck import check, idle_note, target

        exit_with_health(*check(*target()), idle_note())
    import asyncio
    import gc
    import os

    gc.disable()  # until the server settles (beephost_core.memory): a faster start
    from beephost_core import dataclass_code

    dataclass_code.use()  # before the first dataclass is made: the image's, compiled
    from beephost_core.early_worker import start_early
    from beephost_rpc_backend.healthcheck import ENV_PREFIX

    # It boots while the settings are validated (pydantic's import, most of the wait).
    early = start_early(ENV_PREFIX)
    from beephost_core.boot import without_pydantic_plugins

    without_pydantic_plugins()  # before the settings build pydantic's first model
    from beephost_core.logs import configure_logging
    from beephost_rpc_backend.settings import Settings

    settings = Settings()  # validated before anything starts: unsafe values stop here
    # Before grpc is first imported, which reads it: the core's fork handlers only log
    # "skipping fork() handlers" on every worker spawn, and workers exec right away.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    configure_logging()
    try:
        import uvloop
    except ImportError:
        raise SystemExit(asyncio.run(serve(settings, early))) from None
    raise SystemExit(uvloop.run(serve(settings, early)))


if __name__ == "__main__":
    main()
