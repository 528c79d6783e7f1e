"""A file's bytes: ``PUT`` writes it, ``GET`` (and ``HEAD``) reads it, with ranges.

Both stream: an upload's body goes to the workspace in chunks as it arrives (under a
temporary name, renamed into place once whole: a broken upload leaves nothing), and a
download is read a chunk at a time, each sent before the next is read, so neither
holds the file in memory. The request gate lets these bodies past its JSON and size
checks (``middleware.FILE_ROUTE``): the workspace's quota bounds them.
"""

import asyncio
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse

from beephost_core.activity import Activity
from beephost_core.transfers import FileReader, Upload, WriteBehind, first_read
from beephost_http_backend.deps import ExecutorDep
from beephost_http_backend.errors import COMMON_ERRORS, documented, error_response
from beephost_http_backend.ranges import RangeNotSatisfiable, byte_range
from beephost_http_backend.responses import JSONBytes
from beephost_http_backend.routing import BackendRoute
from beephost_http_backend.schemas import ErrorResponse
from beephost_protocol import ErrorCode, InvalidRequest, files

router = APIRouter(prefix="/api/files", tags=["files"], route_class=BackendRoute)

#: Where file bodies go: the request gate neither limits nor types them.
CHUNK = files.MAX_CHUNK_BYTES

FilePath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=files.MAX_PATH_CHARS,
        description="The file, relative to the workspace.",
    ),
]
# An upload has no size limit but the quota (429): no 413.
UPLOAD_COMMON = tuple(code for code in COMMON_ERRORS if code != ErrorCode.TOO_LARGE)
_BINARY = {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
}


@router.put(
    "/{path:path}",
    status_code=201,
    response_model=files.FileInfo,
    responses={
        200: {"model": files.FileInfo, "description": "A file was replaced."},
        **documented(
            ErrorCode.NOT_FOUND,
            ErrorCode.CONFLICT,
            ErrorCode.QUOTA_EXCEEDED,
            common=UPLOAD_COMMON,
            json_body=False,
        ),
    },
    openapi_extra={"requestBody": {"required": True, "content": _BINARY}},
    summary="Write a file",
)
async def write_file(
    path: FilePath,
    request: Request,
    executor: ExecutorDep,
    overwrite: Annotated[
        bool, Query(description="Replace a file already there (else 409).")
    ] = True,
    sha256: Annotated[
        str | None,
        Header(
            alias="Beephost-Sha256",
            pattern=r"^[0-9a-fA-F]{64}$",
            description="The body's SHA-256: a mismatch writes nothing (400).",
        ),
    ] = None,
) -> Response:
    """Write the request body to ``path`` (any size up to the workspace's quota).

    Missing parent directories are made. The file appears whole, or not at all.
    """
    upload = await asyncio.to_thread(
        executor.workspace.begin_upload,
        path,
        overwrite=overwrite,
        size=_length(request),
    )
    try:
        with executor.activity.request():  # a long upload keeps the backend busy
            await _receive(request, upload)
        info = await asyncio.to_thread(upload.commit, sha256)
    except ClientDisconnect:
        raise InvalidRequest(
            f"{path}: the client went away before the whole body arrived; "
            "nothing was written"
        ) from None
    finally:
        upload.abort()  # a no-op once committed; quick, so it also runs when cancelled
    return JSONBytes(info.model_dump(mode="json"), 200 if upload.replaces else 201)


@router.get(
    "/{path:path}",
    response_class=StreamingResponse,
    responses={
        200: {"content": _BINARY, "description": "The file."},
        206: {"content": _BINARY, "description": "The requested range."},
        416: {
            "model": ErrorResponse,
            "description": "`invalid_request`: the range selects nothing.",
        },
        **documented(ErrorCode.NOT_FOUND, json_body=False),
    },
    summary="Read a file",
)
async def read_file(
    path: FilePath,
    executor: ExecutorDep,
    range_header: Annotated[
        str | None,
        Header(alias="Range", description="One byte range: bytes=a-b, a- or -n."),
    ] = None,
) -> Response:
    """The file's bytes, streamed; ``Range`` selects part of it (206).

    Every byte comes from one version of the file (one open descriptor, checked
    against changes in place): a file that keeps changing before the first chunk is
    409 ``conflict``; one that changes after the headers went out ends the stream
    short of its ``Content-Length``, which the client reports as an error.
    """
    reader, (selected, first) = await asyncio.to_thread(
        first_read,
        lambda: executor.workspace.open_reader(path),
        lambda opened: _first(opened, range_header),
    )
    if isinstance(selected, RangeNotSatisfiable):
        reader.close()
        headers = {"Content-Range": f"bytes */{selected.size}"}
        return error_response(selected, headers, status=416)
    start, end = selected or (0, reader.size)
    headers = {
        "Content-Length": str(end - start),
        "Accept-Ranges": "bytes",
        "Last-Modified": formatdate(reader.info.mtime, usegmt=True),
    }
    if selected is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{reader.size}"
    return StreamingResponse(
        _chunks(reader, first, start, end, executor.activity),
        status_code=206 if selected is not None else 200,
        headers=headers,
        media_type="application/octet-stream",
    )


_Selected = tuple[int, int] | None | RangeNotSatisfiable


def _first(reader: FileReader, range_header: str | None) -> tuple[_Selected, bytes]:
    """The range asked for and its first chunk (read before any byte is sent, so a
    file that changes meanwhile can still be opened again)."""
    try:
        selected = byte_range(range_header, reader.size)
    except RangeNotSatisfiable as refusal:
        return refusal, b""
    start, end = selected or (0, reader.size)
    return selected, reader.read(start, min(CHUNK, end - start))


async def _receive(request: Request, upload: Upload) -> None:
    """The body to the upload, a ``CHUNK`` of pieces per write (no copy: ``writev``),
    each written on a thread while the next is received (``WriteBehind``)."""
    pending: list[bytes] = []
    size = 0
    behind = WriteBehind(upload)
    try:
        async for piece in request.stream():
            pending.append(piece)
            size += len(piece)
            if size >= CHUNK:
                await behind.write(pending)
                pending, size = [], 0
        if pending:
            await behind.write(pending)
        await behind.flush()
    finally:
        behind.forget()


async def _chunks(
    reader: FileReader, first: bytes, start: int, end: int, activity: Activity
) -> AsyncIterator[bytes]:
    try:
        with activity.request():  # a long download keeps the backend busy
            if first:
                yield first
            offset = start + len(first)
            while first and offset < end:
                data = await asyncio.to_thread(
                    reader.read, offset, min(CHUNK, end - offset)
                )
                if not data:
                    return  # the file shrank meanwhile: Content-Length is not met
                offset += len(data)
                yield data
    finally:
        reader.close()


def _length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None
