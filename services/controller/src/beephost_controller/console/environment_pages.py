"""An environment's page, its create, rebuild and delete, and a build's log as it is
written (polled by static/console.js)."""

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import TypeAdapter, ValidationError

from beephost_controller.backends.warm_pools import Pools
from beephost_controller.console import csrf
from beephost_controller.console.auth import Viewer, ViewerDep
from beephost_controller.console.overview import (
    backend_lines,
    image_bytes_by_environment,
)
from beephost_controller.console.render import page
from beephost_controller.deps import BackendsDep, PoolsDep, ServiceDep, StoreDep
from beephost_controller.routes import environments as environment_routes
from beephost_controller.routes import images as image_routes
from beephost_controller.routes import jobs as job_routes
from beephost_controller.routes import pools as pool_routes
from beephost_controller.schemas import (
    BACKEND_TYPES,
    MAX_POOL_SIZE,
    BackendLimits,
    BackendOptions,
    BackendType,
)
from beephost_controller.schemas.environments import EnvironmentCreate
from beephost_controller.schemas.pools import PoolPublic, PoolSet
from beephost_protocol.errors import InvalidRequest

router = APIRouter(prefix="/console", include_in_schema=False)

#: Log lines one poll returns at most.
LOG_PAGE = 2000


def _api(name: str = "") -> str:
    return f"/api/v1/environments/{name}".rstrip("/")


@router.get("/environments/{name}")
def environment_page(
    request: Request,
    name: str,
    viewer: ViewerDep,
    service: ServiceDep,
    backends: BackendsDep,
    pools: PoolsDep,
) -> Response:
    viewer.require("GET", _api(name))
    env = environment_routes.get_environment(name, service)
    images = (
        image_routes.list_images(service, backends)
        if viewer.may("GET", "/api/v1/images")
        else None
    )
    job = job_routes.get_job(env.job_id, service.store) if env.job_id else None
    return page(
        request,
        "environment.html",
        viewer,
        e=env,
        lock=service.environment(name).lock,
        image_bytes=image_bytes_by_environment(images).get(name),
        job=job,
        o={"backends": backend_lines(backends, viewer, environment=name)},
        pools=_pool_rows(name, viewer, pools),
        may_set_pools=viewer.may("PUT", f"{_api(name)}/pools/http"),
        max_pool_size=MAX_POOL_SIZE,
    )


def _pool_rows(name: str, viewer: Viewer, pools: Pools) -> list[PoolPublic] | None:
    """A row per backend type (its pool in effect, or none: size 0); None when the
    token may not see pools."""
    if not viewer.may("GET", f"{_api(name)}/pools"):
        return None
    found = {p.type: p for p in pool_routes.environment_pools(name, pools)}
    return [found.get(kind) or _no_pool(name, kind) for kind in BACKEND_TYPES]


def _no_pool(name: str, kind: BackendType) -> PoolPublic:
    return PoolPublic(
        environment=name,
        type=kind,
        size=0,
        limits=BackendLimits(),
        options=BackendOptions(),
        source="default",
        ready=0,
        starting=0,
    )


@router.post("/environments/{name}/pools")
async def set_pool(
    request: Request,
    name: str,
    viewer: ViewerDep,
    pools: PoolsDep,
    type: Annotated[str, Form(max_length=10)],
    size: Annotated[str, Form(max_length=10)],
) -> Response:
    """The API's PUT of the pool, with only its size changed: an environment's own
    limits and options stay (the console has no form for them)."""
    await csrf.check(request, viewer.session)
    if not size.strip().isdigit():
        raise InvalidRequest(
            f"the pool was not set: its size is a whole number, not {size!r}"
        )
    try:
        kind = TypeAdapter(BackendType).validate_python(type)
        body = PoolSet(size=int(size))
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]) for e in exc.errors()[:3])
        raise InvalidRequest(f"the pool was not set: {problems}") from None
    viewer.require("PUT", f"{_api(name)}/pools/{kind}")
    current = {p.type: p for p in pool_routes.environment_pools(name, pools)}
    own = current.get(kind)
    if own is not None and own.source == "environment":
        body = body.model_copy(update={"limits": own.limits, "options": own.options})
    pool_routes.set_pool(name, kind, body, pools)
    return RedirectResponse(f"/console/environments/{name}#h-pools", status_code=303)


@router.post("/environments/{name}/pools/{kind}/reset")
async def reset_pool(
    request: Request, name: str, kind: BackendType, viewer: ViewerDep, pools: PoolsDep
) -> Response:
    """The API's DELETE of the environment's own setting: the default applies."""
    await csrf.check(request, viewer.session)
    viewer.require("DELETE", f"{_api(name)}/pools/{kind}")
    pool_routes.reset_pool(name, kind, pools)
    return RedirectResponse(f"/console/environments/{name}#h-pools", status_code=303)


@router.post("/environments")
async def create_environment(
    request: Request,
    viewer: ViewerDep,
    service: ServiceDep,
    name: Annotated[str, Form(max_length=200)],
    python: Annotated[str | None, Form(max_length=20)] = None,
    requirements: Annotated[str, Form(max_length=100_000)] = "",
    network: Annotated[str | None, Form(max_length=5)] = None,
) -> Response:
    await csrf.check(request, viewer.session)
    viewer.require("POST", _api())
    try:
        spec = EnvironmentCreate(
            name=name.strip(),
            python=python or None,
            requirements_txt=requirements or None,
            network=network is not None,
        )
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]) for e in exc.errors()[:3])
        raise InvalidRequest(f"the environment was not created: {problems}") from None
    row = environment_routes.create_environment(spec, service, viewer.caller)
    return RedirectResponse(f"/console/environments/{row.name}", status_code=303)


@router.post("/environments/{name}/rebuild")
async def rebuild_environment(
    request: Request, name: str, viewer: ViewerDep, service: ServiceDep
) -> Response:
    """Queue a failed build again: the API's idempotent create (PUT) of the same
    definition, which is what retries one (a ready image is content-addressed: there
    is nothing to rebuild)."""
    await csrf.check(request, viewer.session)
    viewer.require("PUT", _api(name))
    row = service.environment(name)
    spec = EnvironmentCreate(
        name=row.name,
        python=row.python,
        requirements=row.requirements,
        network=row.network,
    )
    service.create_environment(spec, ensure=True)
    return RedirectResponse(f"/console/environments/{name}", status_code=303)


@router.get("/environments/{name}/delete")
def confirm_delete(
    request: Request, name: str, viewer: ViewerDep, service: ServiceDep
) -> Response:
    viewer.require("DELETE", _api(name))
    service.environment(name)  # NotFound before a confirmation of nothing
    return page(request, "confirm_delete.html", viewer, name=name)


@router.post("/environments/{name}/delete")
async def delete_environment(
    request: Request,
    name: str,
    viewer: ViewerDep,
    service: ServiceDep,
    pools: PoolsDep,
    backends: BackendsDep,
    confirm: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    await csrf.check(request, viewer.session)
    viewer.require("DELETE", _api(name))
    if confirm != name:
        raise InvalidRequest(
            f"not deleted: type the environment's name ({name!r}) to confirm"
        )
    environment_routes.delete_environment(name, service, pools, backends)
    return RedirectResponse("/console", status_code=303)


@router.get("/jobs/{job_id}/log")
def job_log(
    job_id: str,
    viewer: ViewerDep,
    store: StoreDep,
    after: Annotated[int, Query(ge=-1, le=(1 << 63) - 1)] = -1,
) -> Response:
    """The lines after ``after`` and the job's status, as JSON (the API's log page)."""
    viewer.require("GET", f"/api/v1/jobs/{job_id}/log")
    log = job_routes.get_job_log(job_id, store, after=after, limit=LOG_PAGE)
    return Response(log.model_dump_json(), media_type="application/json")
