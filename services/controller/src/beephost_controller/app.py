"""The controller's FastAPI application factory and lifespan."""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from beephost_controller import errors
from beephost_controller.jobs import JobRunner
from beephost_controller.metrics import ControllerMetrics
from beephost_controller.resolver import Lock, resolve
from beephost_controller.routes import environments, health, jobs, runtimes
from beephost_controller.service import ControllerService, ImageBuilder
from beephost_controller.settings import Settings
from beephost_controller.store import SqliteStore

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    builder: ImageBuilder | None = None,
    resolver: Callable[[list[str], str], Lock] | None = None,
) -> FastAPI:
    """Build the app; the lifespan opens the store, recovers jobs and reconciles.

    Args:
        settings: Defaults to ``Settings()`` from the environment.
        builder: The image builder; the Docker-backed one if omitted.
        resolver: Requirement resolution; uv against the configured index if omitted.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics = ControllerMetrics()
        store = SqliteStore(settings.database)
        runner = JobRunner(
            store, settings.build_workers, on_finish=metrics.job_finished
        )
        service = ControllerService(
            settings,
            store,
            runner,
            builder or _docker_builder(settings),
            resolver or _uv_resolver(settings),
        )
        app.state.settings, app.state.store, app.state.metrics = (
            settings,
            store,
            metrics,
        )
        app.state.service, app.state.jobs = service, runner
        recovered = runner.recover(service.resume)
        if recovered:
            logger.info("recovered %d unfinished job(s)", len(recovered))
        app.state.reconciled = True
        try:
            yield
        finally:
            runner.shutdown()
            store.close()

    app = FastAPI(
        title="Beep Python Host controller",
        version="1",
        summary="Runtimes, environments, images and backends on Docker.",
        lifespan=lifespan,
    )
    errors.install(app)
    for module in (health, runtimes, environments, jobs):
        app.include_router(module.router)

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        app.state.metrics.requests.labels(
            request.method, path, str(response.status_code)
        ).inc()
        return response

    return app


def _uv_resolver(settings: Settings) -> Callable[[list[str], str], Lock]:
    def run(requirements: list[str], python: str) -> Lock:
        ca = str(settings.ca_bundle) if settings.ca_bundle else None
        return resolve(requirements, python, index_url=settings.index_url, ca_bundle=ca)

    return run


def _docker_builder(settings: Settings) -> ImageBuilder:
    from beephost_controller.images import DockerImageBuilder

    builder: ImageBuilder = DockerImageBuilder(settings)
    return builder
