"""The workspace's metadata: stat, list, mkdir, remove, rename, usage (JSON in and out).

The bodies are the protocol's file commands and the replies their results, so the
routes only hand them to the core. The files' bytes travel on ``/api/files/{path}``.
"""

from starlette.responses import Response

from beephost_http_backend.deps import ExecutorDep
from beephost_http_backend.responses import JSONBytes
from beephost_http_backend.routing import resource_router
from beephost_protocol import ErrorCode, files

router, api = resource_router("/api/fs", "files")

_PATH_ERRORS = (ErrorCode.NOT_FOUND,)
_CHANGE_ERRORS = (*_PATH_ERRORS, ErrorCode.CONFLICT)


@api("POST", "/stat", files.FileInfo, "Describe a path", _PATH_ERRORS)
async def stat_file(body: files.FileStat, executor: ExecutorDep) -> Response:
    """One path of the workspace; a symlink is described, never followed."""
    return JSONBytes(await executor.run(body))


@api("POST", "/list", files.FileListing, "List a directory", _PATH_ERRORS)
async def list_files(body: files.FileList, executor: ExecutorDep) -> Response:
    """A directory's entries, sorted by name."""
    return JSONBytes(await executor.run(body))


@api("POST", "/mkdir", files.FileInfo, "Make a directory", _CHANGE_ERRORS)
async def make_directory(body: files.FileMkdir, executor: ExecutorDep) -> Response:
    """Make a directory, with its missing parents unless ``parents`` is false."""
    return JSONBytes(await executor.run(body))


@api("POST", "/remove", files.FileRemoved, "Remove a path", _CHANGE_ERRORS)
async def remove_file(body: files.FileRemove, executor: ExecutorDep) -> Response:
    """Remove a file, a symlink (not its target) or a directory (``recursive`` for
    one that is not empty)."""
    return JSONBytes(await executor.run(body))


@api("POST", "/rename", files.FileInfo, "Move a path", _CHANGE_ERRORS)
async def rename_file(body: files.FileRename, executor: ExecutorDep) -> Response:
    """Move a file or directory within the workspace."""
    return JSONBytes(await executor.run(body))


@api("GET", "/usage", files.WorkspaceDescription, "Workspace usage", json_body=False)
async def workspace_usage(executor: ExecutorDep) -> Response:
    """Where the workspace is (as user code sees it), its bytes used and its quota."""
    return JSONBytes(await executor.run(files.WorkspaceUsage()))
