"""The workspace's metadata: stat, list, mkdir, remove, rename, usage (JSON in and out).

The bodies are the protocol's file commands and the replies their results, so the
routes only hand them to the core. The files' bytes travel on ``/api/files/{path}``.
"""

from fastapi import APIRouter
from starlette.responses import Response

from beephost_http_backend.deps import ExecutorDep
from beephost_http_backend.errors import documented
from beephost_http_backend.responses import JSONBytes
from beephost_http_backend.routing import BackendRoute
from beephost_protocol import ErrorCode, files

router = APIRouter(prefix="/api/fs", tags=["files"], route_class=BackendRoute)

_PATH_ERRORS = (ErrorCode.NOT_FOUND,)


@router.post(
    "/stat",
    response_model=files.FileInfo,
    responses=documented(*_PATH_ERRORS),
    summary="Describe a path",
)
async def stat_file(body: files.FileStat, executor: ExecutorDep) -> Response:
    """One path of the workspace; a symlink is described, never followed."""
    return JSONBytes(await executor.run(body))


@router.post(
    "/list",
    response_model=files.FileListing,
    responses=documented(*_PATH_ERRORS),
    summary="List a directory",
)
async def list_files(body: files.FileList, executor: ExecutorDep) -> Response:
    """A directory's entries, sorted by name."""
    return JSONBytes(await executor.run(body))


@router.post(
    "/mkdir",
    response_model=files.FileInfo,
    responses=documented(*_PATH_ERRORS, ErrorCode.CONFLICT),
    summary="Make a directory",
)
async def make_directory(body: files.FileMkdir, executor: ExecutorDep) -> Response:
    """Make a directory, with its missing parents unless ``parents`` is false."""
    return JSONBytes(await executor.run(body))


@router.post(
    "/remove",
    response_model=files.FileRemoved,
    responses=documented(*_PATH_ERRORS, ErrorCode.CONFLICT),
    summary="Remove a path",
)
async def remove_file(body: files.FileRemove, executor: ExecutorDep) -> Response:
    """Remove a file, a symlink (not its target) or a directory (``recursive`` for
    one that is not empty)."""
    return JSONBytes(await executor.run(body))


@router.post(
    "/rename",
    response_model=files.FileInfo,
    responses=documented(*_PATH_ERRORS, ErrorCode.CONFLICT),
    summary="Move a path",
)
async def rename_file(body: files.FileRename, executor: ExecutorDep) -> Response:
    """Move a file or directory within the workspace."""
    return JSONBytes(await executor.run(body))


@router.get(
    "/usage",
    response_model=files.WorkspaceDescription,
    responses=documented(json_body=False),
    summary="Workspace usage",
)
async def workspace_usage(executor: ExecutorDep) -> Response:
    """Where the workspace is (as user code sees it), its bytes used and its quota."""
    return JSONBytes(await executor.run(files.WorkspaceUsage()))
