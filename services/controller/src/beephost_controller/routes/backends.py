"""Backends: containers of an environment's image serving one transport."""

from dataclasses import asdict
from typing import Annotated

from fastapi import Query, Response, status

from beephost_controller.backends import BackendRequest
from beephost_controller.deps import (
    BackendsDep,
    Caller,
    InstallerDep,
    PoolsDep,
    VisibleBackendId,
    visible_rows,
)
from beephost_controller.egress import refuse_scoped_secrets
from beephost_controller.routes import resource_router
from beephost_controller.rows import BackendRow
from beephost_controller.schemas import BackendLimits, BackendOptions
from beephost_controller.schemas.backends import (
    BackendConnection,
    BackendCreate,
    BackendPublic,
    InstalledPackage,
    InstalledPackages,
    PackagesInstall,
)
from beephost_controller.schemas.egress import BackendEgress, EgressRefusalPublic
from beephost_controller.schemas.jobs import JobPublic
from beephost_protocol.errors import Conflict, Unavailable


def backend_public(row: BackendRow, *, token: str | None = None) -> BackendPublic:
    """The row as the API shows it; the token only where it is given (start's reply)."""
    public = BackendPublic.model_validate(row, from_attributes=True)
    return public.model_copy(update={"token": token})


router = resource_router("/api/v1/backends", "backends")


@router.post("", status_code=status.HTTP_201_CREATED)
def start_backend(
    body: BackendCreate, pools: PoolsDep, caller: Caller
) -> BackendPublic:
    """Start a backend container; it answers once `status` is `ready`.

    When a warm pool of the environment and type serves the start (no token, port or
    bind address of its own, the pool's limits and options), a ready member is claimed
    and returned `ready`, with `claimed_at` set. The reply is the only one that
    carries the backend's `token`.
    """
    refuse_scoped_secrets(caller, body.egress)
    row = pools.start(
        BackendRequest(
            environment=body.environment,
            type=body.type,
            token=body.token,
            port=body.port,
            bind_address=body.bind_address,
            limits=body.limits or BackendLimits(),
            options=body.options or BackendOptions(),
            ttl=body.ttl,
            idle_timeout=body.idle_timeout,
            started_by=caller,
            egress=body.egress,
        )
    )
    # The start told the redactor: never in a log line (the reply is the one place
    # it appears).
    return backend_public(row, token=row.token)


@router.get("")
def list_backends(
    backends: BackendsDep,
    caller: Caller,
    mine: Annotated[
        bool,
        Query(description="Only the backends the caller's token started."),
    ] = False,
) -> list[BackendPublic]:
    """Every backend the caller may see, with its status refreshed from its container
    (an admin backend's token sees only those it started)."""
    rows = visible_rows(backends.all(), caller, mine=mine)
    return [backend_public(row) for row in rows]


@router.get("/{backend_id}")
def get_backend(
    backend_id: VisibleBackendId,
    backends: BackendsDep,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=30,
            description="Seconds to wait for a change of status or reason (long poll).",
        ),
    ] = 0,
    seen: Annotated[
        str | None,
        Query(
            max_length=32,
            description="With `wait`: the status the caller last saw; a backend in "
            "another status is returned at once.",
        ),
    ] = None,
) -> BackendPublic:
    if wait:
        return backend_public(backends.wait_change(backend_id, wait, seen=seen))
    return backend_public(backends.refresh(backend_id))


@router.delete("/{backend_id}", status_code=status.HTTP_204_NO_CONTENT)
def stop_backend(backend_id: VisibleBackendId, backends: BackendsDep) -> None:
    """Stop and remove the container (and its network and socket directory)."""
    backends.stop(backend_id)


@router.get(
    "/{backend_id}/logs",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def backend_logs(
    backend_id: VisibleBackendId,
    backends: BackendsDep,
    tail: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> Response:
    """The container's output (stdout and stderr), the last `tail` lines."""
    text = backends.logs(backend_id, tail or 10_000)
    return Response(text, media_type="text/plain; charset=utf-8")


@router.get("/{backend_id}/egress")
def backend_egress(
    backend_id: VisibleBackendId,
    backends: BackendsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> BackendEgress:
    """The backend's egress policy (`mode`) and the last `limit` connections the
    egress proxy refused it, oldest first: why a request of its code failed."""
    row, refusals = backends.egress_refusals(backend_id, limit)
    return BackendEgress(
        backend_id=row.id,
        mode=row.egress.mode,
        refusals=[EgressRefusalPublic(**asdict(r)) for r in refusals],
    )


@router.get("/{backend_id}/connection")
def backend_connection(
    backend_id: VisibleBackendId, backends: BackendsDep
) -> BackendConnection:
    """The URL and token a client connects with."""
    row = backends.refresh(backend_id)
    if row.pooled:
        # Its token goes to whoever claims it, and to no one before.
        raise Conflict(
            f"backend {backend_id} is an unclaimed pool member: start one to claim it",
            {"backend": backend_id},
        )
    if row.endpoint is None:
        raise Unavailable(
            f"backend {backend_id} has no endpoint yet ({row.status})",
            {"backend": backend_id, "status": row.status},
        )
    return BackendConnection(url=row.endpoint, token=row.token)


@router.post("/{backend_id}/packages", status_code=status.HTTP_202_ACCEPTED)
def install_packages(
    backend_id: VisibleBackendId, body: PackagesInstall, installer: InstallerDep
) -> JobPublic:
    """Add packages to a running backend (a job of kind `install`, with a log).

    The controller resolves them with the environment's lock and what the backend has
    installed (a conflict fails the job with the resolver's message), downloads their
    wheels and copies them in; the backend stays offline. Every session imports them
    at its next import. A failed install changes nothing in the backend; the
    environment is never changed.
    """
    row = installer.submit(backend_id, body.packages)
    return JobPublic.model_validate(row, from_attributes=True)


@router.get("/{backend_id}/packages")
def installed_packages(
    backend_id: VisibleBackendId, installer: InstallerDep
) -> InstalledPackages:
    """What was installed into the backend at run time."""
    return InstalledPackages(
        packages=[
            InstalledPackage(name=p.name, version=p.version)
            for p in installer.installed(backend_id)
        ]
    )
