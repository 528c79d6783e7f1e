"""The playground: run code in a backend from the browser, its output streamed back.

Each browser tab has a session of its own in the backend (the tab's random id, kept in
its sessionStorage, names it here), so a tab's variables live on between its runs and
two tabs never share them. The run streams NDJSON events to the page's script: text as
it is printed, each image, each HTML output (which the page shows in a sandboxed frame
with its own policy, never in the console's origin), then the result or the error.
"""

import base64
import json
import threading
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from beephost_client import Output, OutputChunk
from beephost_controller.console import csrf, workspace
from beephost_controller.console.auth import Viewer, ViewerDep
from beephost_controller.console.overview import backend_lines
from beephost_controller.console.render import page
from beephost_controller.deps import BackendsDep, PoolsDep, ServiceDep, check_visible
from beephost_controller.routes import backends as backend_routes
from beephost_controller.rows import BackendRow
from beephost_controller.schemas.backends import BackendCreate
from beephost_protocol.errors import BeepHostError, ExecutionFailed, InvalidRequest

router = APIRouter(prefix="/console/playground", include_in_schema=False)

#: Idle seconds before a tab's session in the backend expires (the backend's rule).
SESSION_TTL = 3600.0
#: A run's deadline, seconds.
RUN_TIMEOUT = 300.0
#: Tab sessions remembered at most (the oldest forgotten first; they expire anyway).
MAX_TABS = 1000


class RunRequest(BaseModel):
    backend: str = Field(max_length=64)
    tab: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    code: str = Field(max_length=200_000)


class InterruptRequest(BaseModel):
    backend: str = Field(max_length=64)
    tab: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9-]+$")


class TabSessions:
    """Which backend session each (sign-in, tab, backend) runs in."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            return self._ids.get(key)

    def put(self, key: tuple[str, str, str], session_id: str) -> None:
        with self._lock:
            while len(self._ids) >= MAX_TABS:
                del self._ids[next(iter(self._ids))]
            self._ids[key] = session_id

    def forget(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._ids.pop(key, None)


def tabs_of(request: Request) -> TabSessions:
    tabs: TabSessions = request.app.state.console_tabs
    return tabs


@router.get("")
def playground_page(
    request: Request,
    viewer: ViewerDep,
    backends: BackendsDep,
    service: ServiceDep,
    backend: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    choices = [
        line.backend
        for line in backend_lines(backends, viewer)
        if line.backend.status in ("ready", "starting") and not line.backend.pooled
    ]
    ready = [env.name for env in service.store.environments() if env.status == "ready"]
    return page(
        request,
        "playground.html",
        viewer,
        choices=choices,
        chosen=backend or "",
        environments=ready,
    )


@router.post("/start")
async def start_backend(
    request: Request,
    viewer: ViewerDep,
    pools: PoolsDep,
    environment: Annotated[str, Form(max_length=200)],
    type: Annotated[str, Form(max_length=10)],
) -> Response:
    """Start a backend to play in: the API's start (a warm pool's member when one
    serves it), on behalf of this sign-in's token; its token stays in the console."""
    await csrf.check(request, viewer.session)
    viewer.require("POST", "/api/v1/backends")
    try:
        body = BackendCreate.model_validate({"environment": environment, "type": type})
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]) for e in exc.errors()[:3])
        raise InvalidRequest(f"no backend was started: {problems}") from None
    started = backend_routes.start_backend(body, pools, viewer.caller)
    return RedirectResponse(
        f"/console/playground?backend={started.id}", status_code=303
    )


def _row(viewer: Viewer, backends: BackendsDep, backend_id: str) -> BackendRow:
    check_visible(backends.store, backend_id, viewer.caller)
    row = backends.get_row(backend_id)
    if row.pooled:
        raise InvalidRequest(f"backend {backend_id} is an unclaimed pool member")
    return row


def _event(**fields: object) -> bytes:
    return json.dumps(fields).encode() + b"\n"


def _events(item: OutputChunk | Output) -> Iterator[bytes]:
    if isinstance(item, OutputChunk):
        yield _event(kind=item.stream, text=item.data)
    elif item.png is not None:
        yield _event(kind="image", png=base64.b64encode(item.png).decode())
    elif item.html is not None:
        yield _event(kind="html", html=item.html)
    elif item.text is not None:
        yield _event(kind="stdout", text=item.text + "\n")


@router.post("/run")
async def run(
    request: Request, body: RunRequest, viewer: ViewerDep, backends: BackendsDep
) -> Response:
    """NDJSON events: ``stdout``/``stderr`` text, ``image`` (base64 PNG), ``html``,
    then ``result`` (the last value's text) or ``error`` (the traceback)."""
    await csrf.check(request, viewer.session)
    row = _row(viewer, backends, body.backend)
    tabs = tabs_of(request)
    key = (viewer.session.id, body.tab, row.id)

    def events() -> Iterator[bytes]:
        try:
            with workspace.workspace_of(backends, row) as client:
                known = tabs.get(key)
                session = client.session(session_id=known, ttl=SESSION_TTL)
                if known is None:
                    session.open()
                    tabs.put(key, session.id)
                with session.stream(body.code, timeout=RUN_TIMEOUT) as items:
                    for item in items:
                        yield from _events(item)
                result = items.result
                yield _event(kind="result", text=result.text or "")
        except ExecutionFailed as exc:
            yield _event(kind="error", text=exc.remote_traceback or exc.message)
        except BeepHostError as exc:
            if exc.wire_code == "session_lost":
                tabs.forget(key)
            yield _event(kind="error", text=f"{exc.wire_code}: {exc.message}")

    return StreamingResponse(events(), media_type="application/x-ndjson")


@router.post("/interrupt")
async def interrupt(
    request: Request, body: InterruptRequest, viewer: ViewerDep, backends: BackendsDep
) -> Response:
    await csrf.check(request, viewer.session)
    row = _row(viewer, backends, body.backend)
    known = tabs_of(request).get((viewer.session.id, body.tab, row.id))
    signalled = False
    if known is not None:
        with workspace.workspace_of(backends, row) as client:
            signalled = client.session(session_id=known).interrupt()
    return Response(
        json.dumps({"interrupted": signalled}), media_type="application/json"
    )
