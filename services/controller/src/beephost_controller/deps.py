"""Annotated dependencies: the objects the lifespan put on app.state, auth, and the
refusal of undeclared query parameters."""

import hmac
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from beephost_controller.backends import BackendService, token_digest
from beephost_controller.backends.install import PackageInstaller
from beephost_controller.backends.warm_pools import Pools
from beephost_controller.redact import Redactor
from beephost_controller.rows import BackendRow
from beephost_controller.secret_store import SecretStore
from beephost_controller.service import ControllerService
from beephost_controller.settings import Settings
from beephost_controller.store import SqliteStore
from beephost_protocol.errors import InvalidRequest, NotFound, Unauthorized

T = TypeVar("T")


def _from_state(name: str, kind: type[T]) -> Callable[[Request], T]:
    """The dependency returning ``app.state.<name>``, typed as ``kind``."""

    def dependency(request: Request) -> T:
        value: T = getattr(request.app.state, name)
        return value

    return dependency


#: What an admin backend's controller token may reach: environments and backends (and
#: the jobs that build them), runtimes read-only. Never the config.
ADMIN_SCOPE = ("/api/v1/environments", "/api/v1/backends", "/api/v1/jobs")


def _via_unix_socket(request: Request) -> bool:
    # A TCP listener always reports a port; the admin Unix socket reports none.
    server = request.scope.get("server") or (None, None)
    return not isinstance(server[1], int)


def in_admin_scope(method: str, path: str) -> bool:
    """Whether an admin backend's token may make this call (the console asks it of
    the API path behind each of its sections)."""
    if method == "GET" and path.startswith("/api/v1/runtimes"):
        return True
    return any(path == p or path.startswith(p + "/") for p in ADMIN_SCOPE)


# Declares the scheme in the OpenAPI document; the header is parsed below, so that a
# missing or malformed one gets this API's own 401 error, not FastAPI's.
_bearer = HTTPBearer(
    auto_error=False,
    description="The controller's token, or an admin backend's scoped one.",
)


def require_token(
    request: Request,
    _credentials: Annotated[
        HTTPAuthorizationCredentials | None, Security(_bearer)
    ] = None,
) -> None:
    """The routes' declaration of the bearer scheme in the OpenAPI document (gate.py
    has authenticated the request already, before its body was read)."""
    caller_of(request)


def _presented_token(request: Request) -> str:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    return presented if scheme.lower() == "bearer" else ""


def authenticate(request: Request) -> str | None:
    """Bearer-token auth, constant-time; who asks.

    The controller's token opens everything. An admin backend's token opens
    ``ADMIN_SCOPE`` while that backend exists. Without a configured token the TCP API
    is open (it is on loopback: settings refuse anything else), but the admin Unix
    socket never is.

    Returns:
        The admin backend whose scoped token the request presents; None for the
        controller's own token (or an open API).

    Raises:
        Unauthorized: No valid token for this request.
    """
    return token_caller(
        request.app.state.settings,
        request.app.state.store,
        _presented_token(request),
        scoped=in_admin_scope(request.method, request.url.path),
        open_api=not _via_unix_socket(request),
    )


def token_caller(
    settings: Settings,
    store: SqliteStore,
    presented: str,
    *,
    scoped: bool,
    open_api: bool,
) -> str | None:
    """Who presents ``presented``: the rule of :func:`authenticate`, for the API's
    bearer header and the console's sign-in alike.

    Args:
        scoped: Whether an admin backend's token may make this call.
        open_api: Whether no token is needed when none is configured (TCP, not the
            admin Unix socket).

    Returns:
        The admin backend whose token it is; None for the controller's own token.

    Raises:
        Unauthorized: Not a valid token here.
    """
    if settings.token is not None and hmac.compare_digest(
        settings.token.get_secret_value().encode(), presented.encode()
    ):
        return None
    if presented and scoped:
        # The digest is looked up, never compared byte by byte: no timing signal.
        row = store.backend_by_controller_token(token_digest(presented))
        if row is not None:
            return row.id
    if settings.token is None and open_api:
        return None
    raise Unauthorized("a valid bearer token is required")


#: Where the request's scope keeps who asks, once authenticated.
_CALLER = "beephost.caller"


def caller_of(request: Request) -> str | None:
    """Who makes this request (:func:`authenticate`), authenticated once per request:
    the gate's answer, kept in the request's scope, serves every later dependency."""
    if _CALLER not in request.scope:
        request.scope[_CALLER] = authenticate(request)
    caller: str | None = request.scope[_CALLER]
    return caller


Caller = Annotated[str | None, Depends(caller_of)]


def visible_backend(backend_id: str, request: Request, caller: Caller) -> str:
    """``backend_id`` if the caller may see that backend: the controller's token sees
    every backend, an admin backend's token only those it started (others are
    ``not_found``, as if they did not exist: their tokens are not its to read)."""
    check_visible(request.app.state.store, backend_id, caller)
    return backend_id


def check_visible(store: SqliteStore, backend_id: str, caller: str | None) -> None:
    """NotFound unless ``caller`` may see the backend (:func:`visible_backend`)."""
    if caller is not None:
        row = store.backend(backend_id)
        if row is None or row.config.started_by != caller:
            raise NotFound(f"no backend {backend_id!r}", {"backend": backend_id})


def visible_rows(
    rows: list[BackendRow], caller: str | None, *, mine: bool = False
) -> list[BackendRow]:
    """The backends of ``rows`` the caller may list: every one for the controller's
    token (``mine``: those it started, not pool members), an admin backend's token
    only those it started."""
    if mine or caller is not None:
        return [row for row in rows if row.started_by == caller and not row.pooled]
    return rows


VisibleBackendId = Annotated[str, Depends(visible_backend)]

SettingsDep = Annotated[Settings, Depends(_from_state("settings", Settings))]
ServiceDep = Annotated[
    ControllerService, Depends(_from_state("service", ControllerService))
]
BackendsDep = Annotated[
    BackendService, Depends(_from_state("backends", BackendService))
]
InstallerDep = Annotated[
    PackageInstaller, Depends(_from_state("installer", PackageInstaller))
]
PoolsDep = Annotated[Pools, Depends(_from_state("pools", Pools))]
StoreDep = Annotated[SqliteStore, Depends(_from_state("store", SqliteStore))]
SecretsDep = Annotated[SecretStore, Depends(_from_state("secrets", SecretStore))]
RedactorDep = Annotated[Redactor, Depends(_from_state("redactor", Redactor))]
Authenticated = Depends(require_token)


async def refuse_unknown_query(request: Request) -> None:
    """Every route's: InvalidRequest (400) for a query parameter it does not declare.

    FastAPI ignores one: a typo (``?wiat=30``), or a parameter only a newer controller
    understands, would silently do nothing, and the caller could not tell. Refused, as
    ``extra="forbid"`` refuses a body's unknown fields. The gate has authenticated the
    request before (gate.py). Async: no worker thread for every request.
    """
    route = request.scope.get("route")
    if not request.query_params or not isinstance(route, APIRoute):
        return
    declared = _declared_query(route)
    unknown = sorted(set(request.query_params.keys()) - declared)
    if unknown:
        takes = ", ".join(sorted(declared)) or "none"
        raise InvalidRequest(
            f"unknown query parameter(s) {', '.join(map(repr, unknown))}: "
            f"{request.method} {route.path} takes {takes}",
            {"unknown": unknown, "declared": sorted(declared)},
        )


def _declared_query(route: APIRoute) -> frozenset[str]:
    """The query parameters ``route`` and its dependencies declare, by alias."""
    names: set[str] = set()
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        names.update(str(param.alias) for param in dependant.query_params)
        pending.extend(dependant.dependencies)
    return frozenset(names)
