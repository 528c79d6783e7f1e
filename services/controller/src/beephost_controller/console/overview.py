"""What the overview page shows, read through the REST API's own route functions (the
same use cases, the same public models, the same scope rules): a console sign-in sees
exactly what its token sees through the API."""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from beephost_controller.backends import BackendService
from beephost_controller.backends.status import status_of
from beephost_controller.backends.warm_pools import Pools
from beephost_controller.console.auth import Viewer
from beephost_controller.routes import backends as backend_routes
from beephost_controller.routes import environments as environment_routes
from beephost_controller.routes import images as image_routes
from beephost_controller.routes import jobs as job_routes
from beephost_controller.routes import pools as pool_routes
from beephost_controller.schemas.backends import BackendPublic
from beephost_controller.schemas.environments import EnvironmentPublic
from beephost_controller.schemas.images import ImagesPublic
from beephost_controller.schemas.jobs import JobPublic
from beephost_controller.schemas.pools import PoolPublic
from beephost_controller.service import ControllerService
from beephost_controller.settings import ConsoleBackend

#: The jobs the overview lists, newest first.
RECENT_JOBS = 10
#: Seconds the overview waits for one engine figure (a memory sample) at most.
ENGINE_WAIT = 3.0

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class BackendLine:
    backend: BackendPublic
    #: Seconds since its last request, as its last health check said (None: unknown).
    idle_for: float | None
    #: Seconds until its lifetime ends (None: no lifetime).
    expires_in: float | None
    #: Bytes of memory in use, as the engine measured it now (None: unknown).
    memory_used: int | None = None


@dataclass(frozen=True)
class ServiceLine:
    """A backend the controller did not start (``CONSOLE_BACKENDS``: the compose
    system's default backends), as the engine finds its container."""

    backend: ConsoleBackend
    #: ``missing``: the engine has no such container.
    status: str
    reason: str | None
    idle_for: float | None
    restarts: int | None
    memory_used: int | None


@dataclass(frozen=True)
class PoolLine:
    pool: PoolPublic
    #: Members claimed from it and still running.
    claimed: int


@dataclass(frozen=True)
class EnvironmentLine:
    environment: EnvironmentPublic
    #: Its image's bytes on disk (None: no image, or not visible to this token).
    image_bytes: int | None


@dataclass(frozen=True)
class Overview:
    backends: list[BackendLine]
    environments: list[EnvironmentLine]
    jobs: list[JobPublic]
    #: None where this sign-in's token may not see it (a scoped token).
    pools: list[PoolLine] | None = None
    images: ImagesPublic | None = None
    #: None where this sign-in's token may not see them (a scoped token).
    services: list[ServiceLine] | None = None
    now: float = field(default_factory=time.time)


def backend_lines(
    backends: BackendService, viewer: Viewer, environment: str | None = None
) -> list[BackendLine]:
    now = time.time()
    shown = [
        public
        for public in backend_routes.list_backends(backends, viewer.caller)
        if environment is None or public.environment == environment
    ]
    memory = _each(
        lambda b: None if b.status == "stopped" else backends.memory_used(b.id),
        shown,
    )
    lines = []
    for public, used in zip(shown, memory, strict=True):
        expires = None if public.expires_at is None else public.expires_at - now
        lines.append(
            BackendLine(public, backends.idle_seconds(public.id), expires, used)
        )
    return lines


def _each(look: Callable[[T], R], items: list[T]) -> list[R | None]:
    """``look`` of every item, at once: each is a call to the engine (Docker's stats
    take a few milliseconds to a second each), and one that fails or takes longer
    than ``ENGINE_WAIT`` leaves None, never an error page."""
    if not items:
        return []
    pool = ThreadPoolExecutor(max_workers=min(8, len(items)))
    futures = [pool.submit(look, item) for item in items]
    deadline = time.monotonic() + ENGINE_WAIT
    results: list[R | None] = []
    for future in futures:
        try:
            results.append(future.result(max(0.0, deadline - time.monotonic())))
        except Exception:  # a figure the page can do without
            results.append(None)
    pool.shutdown(wait=False, cancel_futures=True)  # a slow call ends on its own
    return results


def service_lines(
    backends: BackendService, services: list[ConsoleBackend]
) -> list[ServiceLine]:
    found = _each(lambda s: backends.engine.service(s.container), services)
    lines = []
    for service, seen in zip(services, found, strict=True):
        if seen is None:
            lines.append(ServiceLine(service, "missing", None, None, None, None))
            continue
        status, reason = status_of(seen.state)
        lines.append(
            ServiceLine(
                service,
                status,
                reason,
                seen.state.idle_seconds,
                seen.state.restart_count,
                seen.memory_used,
            )
        )
    return lines


def _pool_lines(pools: Pools, backends: list[BackendPublic]) -> list[PoolLine]:
    lines = []
    for pool in pool_routes.list_pools(pools):
        claimed = sum(
            1
            for b in backends
            if b.claimed_at is not None
            and (b.environment, b.type) == (pool.environment, pool.type)
        )
        lines.append(PoolLine(pool, claimed))
    return lines


def image_bytes_by_environment(images: ImagesPublic | None) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for image in images.images if images else []:
        for name in image.environments:
            sizes[name] = image.size + image.code_volumes_bytes
    return sizes


def overview(
    viewer: Viewer,
    service: ControllerService,
    backends: BackendService,
    pools: Pools,
) -> Overview:
    lines = backend_lines(backends, viewer)
    images = (
        image_routes.list_images(service, backends)
        if viewer.may("GET", "/api/v1/images")
        else None
    )
    sizes = image_bytes_by_environment(images)
    environments = [
        EnvironmentLine(env, sizes.get(env.name) if images else None)
        for env in environment_routes.list_environments(service.store)
    ]
    jobs = sorted(
        job_routes.list_jobs(service.store), key=lambda j: j.created_at, reverse=True
    )[:RECENT_JOBS]
    pool_lines = (
        _pool_lines(pools, [line.backend for line in lines])
        if viewer.may("GET", "/api/v1/pools")
        else None
    )
    services = (
        service_lines(backends, service.settings.console_backends)
        if viewer.may("GET", "/api/v1/images")
        else None
    )
    return Overview(lines, environments, jobs, pool_lines, images, services)
