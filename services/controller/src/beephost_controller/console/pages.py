"""Sign-in, sign-out, the overview page and its live updates."""

import hashlib
import json
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from beephost_controller.console import csrf
from beephost_controller.console.auth import (
    Viewer,
    ViewerDep,
    clear_cookie,
    current_session,
    sessions_of,
    set_cookie,
    sign_in,
)
from beephost_controller.console.overview import Overview, overview
from beephost_controller.console.render import fragment, page
from beephost_controller.deps import BackendsDep, PoolsDep, ServiceDep
from beephost_protocol.errors import Unauthorized

router = APIRouter(prefix="/console", include_in_schema=False)

#: The overview's live sections, each a partial template (templates/parts/).
SECTIONS = ("backends", "environments", "pools", "images", "jobs")


def safe_next(target: str | None) -> str:
    """Where a sign-in goes next: a console path only (never another site)."""
    if target and target.startswith("/console") and "//" not in target:
        return target
    return "/console"


@router.get("/sign-in")
def sign_in_form(
    request: Request, next: Annotated[str | None, Query(max_length=500)] = None
) -> Response:
    if current_session(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return page(request, "sign_in.html", None, next=safe_next(next), message=None)


@router.post("/sign-in")
def sign_in_submit(
    request: Request,
    token: Annotated[str, Form(max_length=512)] = "",
    next: Annotated[str, Form(max_length=500)] = "/console",
) -> Response:
    # No session yet, so no CSRF token: the browser's own headers refuse a sign-in
    # posted from another site (login CSRF).
    csrf.check_origin(request)
    try:
        session = sign_in(request, token.strip())
    except Unauthorized:
        return page(
            request,
            "sign_in.html",
            None,
            status_code=401,
            next=safe_next(next),
            message="That token is not valid for this controller. Check it and try "
            "again.",
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    set_cookie(request, response, session)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, viewer: ViewerDep) -> Response:
    await csrf.check(request, viewer.session)
    sessions_of(request).drop(viewer.session.id)
    response = RedirectResponse("/console/sign-in", status_code=303)
    clear_cookie(request, response)
    return response


def _overview(
    viewer: Viewer, service: ServiceDep, backends: BackendsDep, pools: PoolsDep
) -> Overview:
    return overview(viewer, service, backends, pools)


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def overview_page(
    request: Request,
    viewer: ViewerDep,
    service: ServiceDep,
    backends: BackendsDep,
    pools: PoolsDep,
) -> Response:
    return page(
        request,
        "overview.html",
        viewer,
        o=_overview(viewer, service, backends, pools),
        pythons=service.settings.pythons,
    )


@router.get("/live/overview")
def overview_live(
    request: Request,
    viewer: ViewerDep,
    service: ServiceDep,
    backends: BackendsDep,
    pools: PoolsDep,
) -> Response:
    """The overview's sections as HTML fragments in one JSON object, with an ETag.

    Polling, not server-sent events: each poll is one short request on the same
    routes and threads as the API's (an event stream would hold a worker thread per
    open tab for as long as it is open), it passes any proxy, and a section that did
    not change costs a 304 with no body. The templates stay the one place a section
    is drawn: the first render and every update come from the same partials.
    """
    o = _overview(viewer, service, backends, pools)
    body = json.dumps(
        {"sections": {name: fragment(f"parts/{name}.html", o=o) for name in SECTIONS}}
    )
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag})
