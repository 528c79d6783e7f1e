"""A backend's workspace files, through the client SDK, as the controller's readiness
probe reaches the backend (probes.py): its own route to the server, the backend's
token. The controller keeps no copy of any file."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from beephost_client import Client, Timeout, connect
from beephost_controller.backends import BackendService
from beephost_controller.rows import BackendRow
from beephost_protocol.errors import Unavailable
from beephost_protocol.files import FileInfo

LIMITS = Timeout(request=60.0, connect=5.0, grace=5.0)

#: Entries a listing shows at most (the page is no file manager).
MAX_LISTED = 500


@contextmanager
def workspace_of(backends: BackendService, row: BackendRow) -> Iterator[Client]:
    """A client of the backend; Unavailable when it cannot be reached."""
    try:
        with connect(
            backends.engine.probe_endpoint(row), token=row.token, timeout=LIMITS
        ) as client:
            yield client
    except OSError as exc:
        raise Unavailable(
            f"backend {row.id} cannot be reached ({row.status}): {exc}",
            {"backend": row.id},
        ) from None


def listing(backends: BackendService, row: BackendRow) -> list[FileInfo]:
    """The workspace's top level, directories first."""
    with workspace_of(backends, row) as client:
        entries = client.files.list(".")
    entries.sort(key=lambda e: (e.type != "directory", e.path))
    return entries[:MAX_LISTED]


def upload(
    backends: BackendService, row: BackendRow, path: str, source: BinaryIO
) -> FileInfo:
    with workspace_of(backends, row) as client:
        return client.files.write(path, source)


def download(
    backends: BackendService, row: BackendRow, path: str
) -> tuple[FileInfo, Iterator[bytes]]:
    """The file's info (checked before any byte is sent) and its chunks."""
    with workspace_of(backends, row) as client:
        info = client.files.stat(path)

    def chunks() -> Iterator[bytes]:
        with workspace_of(backends, row) as client:
            yield from client.files.iter_bytes(path)

    return info, chunks()
