"""The controller's FastAPI application factory: the HTTP API around a ControllerSystem."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from beephost_controller import errors, openapi
from beephost_controller.console import mount as console
from beephost_controller.deps import refuse_unknown_query
from beephost_controller.gate import RequestGate
from beephost_controller.ports import BackendContainers, BackendEngine, ImageBuilder
from beephost_controller.redact import Redactor
from beephost_controller.resolver import Lock
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
    secrets,
)
from beephost_controller.settings import Settings
from beephost_controller.system import ControllerSystem


def create_app(
    settings: Settings | None = None,
    *,
    builder: ImageBuilder | None = None,
    resolver: Callable[[list[str], str], Lock] | None = None,
    containers: BackendContainers | None = None,
    engine: BackendEngine | None = None,
    redactor: Redactor | None = None,
) -> FastAPI:
    """Build the app; the lifespan starts its ControllerSystem (the store opened, jobs
    recovered, backends reconciled) and stops it.

    Args:
        settings: Defaults to ``Settings()`` from the environment.
        builder: The image builder; the Docker-backed one if omitted.
        resolver: Requirement resolution; uv against the configured index if omitted.
        containers: The Docker engine's backend containers; the real ones if omitted.
        engine: Where backends run; the settings' engine (on ``containers``) if
            omitted.
        redactor: The secrets to keep out of job logs and errors (``__main__`` shares
            it with the log handlers' filter); from the settings if omitted.
    """
    settings = settings or Settings()
    system = ControllerSystem(
        settings,
        builder=builder,
        resolver=resolver,
        containers=containers,
        engine=engine,
        redactor=redactor,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await system.startup()
        # What deps.py hands the routes.
        state = app.state
        state.settings, state.redactor = settings, system.redactor
        state.store, state.metrics, state.jobs = (
            system.store,
            system.metrics,
            system.jobs,
        )
        state.service, state.backends = system.service, system.backends
        state.installer, state.pools = system.installer, system.pools
        state.secrets = system.secrets
        try:
            yield
        finally:
            await system.shutdown()

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
    # Before the lifespan: readiness (routes/health.py) reads system.reconciled.
    app.state.system = system
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
        secrets,
        docs,
    ):
        app.include_router(module.router)

    # Auth and the body limit before anything reads the body; it counts requests too.
    app.add_middleware(RequestGate, limit=settings.max_request_bytes)
    console.install(app, settings)
    return app
