"""A backend's page: its status history, packages, output and workspace files; its
stop, uploads and downloads, and its connection details, revealed on request."""

import posixpath
import time
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from fastapi.responses import RedirectResponse, StreamingResponse

from beephost_controller.console import csrf, workspace
from beephost_controller.console.auth import Viewer, ViewerDep
from beephost_controller.console.overview import BackendLine
from beephost_controller.console.render import page
from beephost_controller.deps import BackendsDep, InstallerDep, check_visible
from beephost_controller.routes import backends as backend_routes
from beephost_protocol.errors import BeepHostError, InvalidRequest
from beephost_protocol.files import FileInfo

router = APIRouter(prefix="/console/backends", include_in_schema=False)

#: Lines of the backend's output the page shows.
OUTPUT_LINES = 200


def _visible(viewer: Viewer, backends: BackendsDep, backend_id: str) -> None:
    """NotFound, as the API answers, for a backend this sign-in may not see."""
    check_visible(backends.store, backend_id, viewer.caller)


@router.get("/{backend_id}")
def backend_page(
    request: Request,
    backend_id: str,
    viewer: ViewerDep,
    backends: BackendsDep,
    installer: InstallerDep,
    notice: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    _visible(viewer, backends, backend_id)
    public = backend_routes.get_backend(backend_id, backends)
    row = backends.get_row(backend_id)
    files: list[FileInfo] = []
    files_error = None
    if row.status == "ready":
        try:
            files = workspace.listing(backends, row)
        except BeepHostError as exc:
            files_error = f"The workspace cannot be read now: {exc.message}"
    else:
        files_error = f"Files are readable while the backend is ready ({row.status})."
    try:
        packages = backend_routes.installed_packages(backend_id, installer).packages
        packages_error = None
    except BeepHostError as exc:
        packages, packages_error = [], f"Not readable now: {exc.message}"
    expires_in = None if public.expires_at is None else public.expires_at - time.time()
    return page(
        request,
        "backend.html",
        viewer,
        b=public,
        line=BackendLine(public, backends.idle_seconds(backend_id), expires_in),
        packages=packages,
        packages_error=packages_error,
        files=files,
        files_error=files_error,
        logs=backends.logs(backend_id, OUTPUT_LINES),
        notice=NOTICES.get(notice or ""),
    )


#: What a redirect after an action says on the page (by key: no text in URLs).
NOTICES = {"uploaded": "The file was uploaded."}


@router.post("/{backend_id}/stop")
async def stop_backend(
    request: Request, backend_id: str, viewer: ViewerDep, backends: BackendsDep
) -> Response:
    await csrf.check(request, viewer.session)
    _visible(viewer, backends, backend_id)
    environment = backends.get_row(backend_id).environment
    backend_routes.stop_backend(backend_id, backends)
    return RedirectResponse(f"/console/environments/{environment}", status_code=303)


@router.post("/{backend_id}/connection")
async def reveal_connection(
    request: Request, backend_id: str, viewer: ViewerDep, backends: BackendsDep
) -> Response:
    """The URL and token, in the reply to this POST only (never in a page's list or a
    URL): JSON for the page's script, a page of its own without it."""
    await csrf.check(request, viewer.session)
    _visible(viewer, backends, backend_id)
    connection = backend_routes.backend_connection(backend_id, backends)
    if "application/json" in request.headers.get("accept", ""):
        return Response(connection.model_dump_json(), media_type="application/json")
    return page(
        request,
        "connection.html",
        viewer,
        backend_id=backend_id,
        connection=connection,
    )


@router.post("/{backend_id}/files")
async def upload_file(
    request: Request,
    backend_id: str,
    viewer: ViewerDep,
    backends: BackendsDep,
    file: Annotated[UploadFile, File()],
) -> Response:
    await csrf.check(request, viewer.session)
    _visible(viewer, backends, backend_id)
    name = posixpath.basename((file.filename or "").replace("\\", "/"))
    if name in ("", ".", ".."):
        raise InvalidRequest("the upload has no file name")
    row = backends.get_row(backend_id)
    workspace.upload(backends, row, name, file.file)
    return RedirectResponse(
        f"/console/backends/{backend_id}?notice=uploaded", status_code=303
    )


@router.get("/{backend_id}/files/download")
def download_file(
    backend_id: str,
    viewer: ViewerDep,
    backends: BackendsDep,
    path: Annotated[str, Query(min_length=1, max_length=4096)],
) -> Response:
    _visible(viewer, backends, backend_id)
    info, chunks = workspace.download(backends, backends.get_row(backend_id), path)
    if info.type != "file":
        raise InvalidRequest(f"{path!r} is not a file", {"path": path})
    # RFC 6266: an ASCII fallback, and the real name percent-encoded.
    fallback = info.name.encode("ascii", "replace").decode().replace('"', "_")
    disposition = (
        f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(info.name)}"
    )
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": disposition,
            "Content-Length": str(info.size),
        },
    )
