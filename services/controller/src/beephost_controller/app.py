"""The controller's FastAPI application factory and lifespan."""

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from beephost_controller import errors, openapi
from beephost_controller.backends import BackendService
from beephost_controller.backends.install import PackageInstaller
from beephost_controller.backends.lifecycle import CODE_FILL_WAIT
from beephost_controller.backends.pooling import Pools
from beephost_controller.backends.reconcile import remove_leftover_builds
from beephost_controller.deps import refuse_unknown_query
from beephost_controller.gate import RequestGate
from beephost_controller.jobs import JobRunner
from beephost_controller.metrics import ControllerMetrics
from beephost_controller.ports import (
    BackendContainers,
    ContainerRuntimeError,
    ImageBuilder,
)
from beephost_controller.probes import probe
from beephost_controller.redact import Redactor
from beephost_controller.resolver import Lock, resolve
from beephost_controller.routes import (
    backends,
    config,
    docs,
    environments,
    health,
    images,
    jobs,
    pools,
    runtimes,
)
from beephost_controller.runtime.no_engine import (
    REASON,
    NoEngineBuilder,
    NoEngineContainers,
    engine_configured,
)
from beephost_controller.service import ControllerService
from beephost_controller.settings import Settings
from beephost_controller.store import SqliteStore

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    builder: ImageBuilder | None = None,
    resolver: Callable[[list[str], str], Lock] | None = None,
    containers: BackendContainers | None = None,
    redactor: Redactor | None = None,
) -> FastAPI:
    """Build the app; the lifespan opens the store, recovers jobs and reconciles.

    Args:
        settings: Defaults to ``Settings()`` from the environment.
        builder: The image builder; the Docker-backed one if omitted.
        resolver: Requirement resolution; uv against the configured index if omitted.
        containers: The backend container engine; Docker if omitted.
        redactor: The secrets to keep out of job logs and errors (``__main__`` shares
            it with the log handlers' filter); from the settings if omitted.
    """
    settings = settings or Settings()
    redactor = redactor or Redactor.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics = ControllerMetrics()
        engine = engine_configured()
        if not engine and (builder is None or containers is None):
            logger.warning("%s: builds and backend starts will fail", REASON)
        store = SqliteStore(settings.database)
        # Tokens of backends started by an earlier run are secrets of this one too.
        redactor.add(*(row.token for row in store.backends()))
        runner = JobRunner(
            store,
            settings.build_workers,
            on_finish=metrics.job_finished,
            redact=redactor.redact,
        )
        service = ControllerService(
            settings,
            store,
            runner,
            builder or (_docker_builder(settings) if engine else NoEngineBuilder()),
            resolver or _uv_resolver(settings),
            redact=redactor.redact,
        )
        backend_service = BackendService(
            settings,
            store,
            containers or (_docker_containers() if engine else NoEngineContainers()),
            metrics,
            extra_labels=settings.labels,
            probe=probe,
            # Admin backends' controller tokens: only their digest is stored.
            add_secret=redactor.add,
            redact=redactor.redact,
        )
        app.state.settings, app.state.store, app.state.metrics = (
            settings,
            store,
            metrics,
        )
        app.state.service, app.state.jobs = service, runner
        app.state.redactor = redactor
        app.state.backends, app.state.reconciled = backend_service, False
        app.state.installer = PackageInstaller(backend_service, runner, service.resolve)
        warm = app.state.pools = Pools(backend_service)
        # Before the jobs resume: every build container of ours is a dead build's.
        await asyncio.to_thread(_remove_leftover_builds, backend_service)
        recovered = runner.recover(service.resume)
        if recovered:
            logger.info("recovered %d unfinished job(s)", len(recovered))
        stop_filling = threading.Event()
        filler = threading.Thread(
            target=warm.run, args=(stop_filling,), name="beephost-pools", daemon=True
        )
        supervisor = asyncio.create_task(
            _supervise(app, backend_service, settings, filler.start)
        )
        try:
            yield
        finally:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
            stop_filling.set()
            warm.wake()
            if filler.is_alive():
                # A pass may be starting a member: at most one container start.
                await asyncio.to_thread(filler.join, 60)
            codes = backend_service.code_volumes
            if not await asyncio.to_thread(codes.wait_filled, CODE_FILL_WAIT):
                logger.warning("a copy into code volumes is left unfinished")
            if settings.stop_backends_on_shutdown:
                stopped = await asyncio.to_thread(backend_service.stop_all)
                logger.info("removed %d backend container(s) at shutdown", stopped)
            runner.shutdown()
            store.close()

    app = FastAPI(
        title="Beep Python Host controller",
        version="1",
        summary="Runtimes, environments, images and backends on Docker.",
        lifespan=lifespan,
        # routes/docs.py serves /docs without a CDN; no ReDoc (it needs one).
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(refuse_unknown_query)],
    )
    errors.install(app)
    openapi.install(app, settings.pythons)
    for module in (
        health,
        config,
        runtimes,
        environments,
        jobs,
        backends,
        pools,
        images,
        docs,
    ):
        app.include_router(module.router)

    # Auth and the body limit before anything reads the body; it counts requests too.
    app.add_middleware(RequestGate, limit=settings.max_request_bytes)
    return app


async def _supervise(
    app: FastAPI,
    backends: BackendService,
    settings: Settings,
    on_reconciled: Callable[[], None],
) -> None:
    """Reconcile once (readiness waits for it), then sweep every backend forever.

    Args:
        on_reconciled: Called once the rows and containers agree (the pool filler
            starts then: before, it would count members that are about to vanish).
    """
    while not app.state.reconciled:
        try:
            counts = await asyncio.to_thread(backends.reconcile)
        except Exception:
            logger.exception("reconciliation failed; retrying")
            await asyncio.sleep(settings.supervise_interval)
            continue
        logger.info("reconciled backends: %s", counts)
        app.state.reconciled = True
        on_reconciled()
    while True:
        await asyncio.sleep(settings.supervise_interval)
        try:
            await asyncio.to_thread(backends.supervise)
        except Exception:
            logger.exception("supervising backends failed")


def _remove_leftover_builds(backends: BackendService) -> None:
    try:
        removed = remove_leftover_builds(backends)
    except ContainerRuntimeError as exc:  # no engine yet: a build removes its own
        logger.warning("could not remove leftover build containers: %s", exc)
        return
    if removed:
        logger.info("removed %d leftover build container(s)", removed)


def _uv_resolver(settings: Settings) -> Callable[[list[str], str], Lock]:
    def run(requirements: list[str], python: str) -> Lock:
        ca = str(settings.ca_bundle) if settings.ca_bundle else None
        return resolve(requirements, python, index_url=settings.index_url, ca_bundle=ca)

    return run


def _docker_builder(settings: Settings) -> ImageBuilder:
    from beephost_controller.images.builder import DockerImageBuilder

    builder: ImageBuilder = DockerImageBuilder(settings)
    return builder


def _docker_containers() -> BackendContainers:
    from beephost_controller.runtime.docker_containers import DockerContainers
    from beephost_controller.runtime.docker_images import DockerRuntime

    containers: BackendContainers = DockerContainers(DockerRuntime.from_env())
    return containers
