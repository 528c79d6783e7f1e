"""The files API against real, hardened backend containers the controller runs.

For each transport: a 200 MiB file goes into the workspace and back (SHA-256 equal)
with the backend's server and the client keeping their memory flat; paths that lead out
of the workspace (``..``, absolute paths, symlinks made by user code, FIFOs) are refused
and nothing outside is read or written; an upload over the quota is a typed error and
leaves no file, not even a temporary one. Each test runs on the module's own
controller process and on the compose system's controller (``ON_BOTH``).
"""

import hashlib
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from beephost_client import ConnectionLost
from beephost_client.controller import Backend, ControllerClient
from beephost_protocol.errors import Conflict, InvalidRequest, NotFound, QuotaExceeded
from tests.e2e.containers import docker
from tests.e2e.controller_process import ON_BOTH, build_environment, stopped_after
from tests.integration.test_download_versions_contract import (
    SIZE,
    WRITER,
    one_version,
)

pytestmark = pytest.mark.docker

MIB = 1 << 20
KINDS = ["pipe", "http", "rpc"]
CLIENT_PEAK_LIMIT = 24 * MIB  # what the client may hold at once (chunks are 1 MiB)
SERVER_GROWTH_LIMIT = 48 * MIB  # the server's peak RSS growth over the transfers
SMALL_QUOTA = 8 * MIB


@pytest.fixture(scope="module")
def environment(api: ControllerClient) -> str:
    build_environment(api, "files", [], timeout=600)
    return "files"


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("files") / "big.bin"
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(200):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            out.write(chunk)
    return path, digest.hexdigest()


def started(
    api: ControllerClient, environment: str, kind: str, **kw: object
) -> Backend:
    backend = api.start_backend(environment, kind, **kw)  # type: ignore[arg-type]
    return api.wait_backend(backend.id, timeout=90)


@pytest.fixture(scope="module", params=KINDS)
def backend(
    request: pytest.FixtureRequest, api: ControllerClient, environment: str
) -> Iterator[Backend]:
    running = started(api, environment, request.param)
    yield running
    api.stop_backend(running.id)


def server_peak_rss(api: ControllerClient, backend: Backend, docker_cli: str) -> int:
    """The backend server's (the container's first process) peak RSS, in bytes."""
    found = api.backend(backend.id)
    assert found.container_id is not None
    status = docker(
        docker_cli,
        "exec",
        found.container_id,
        "/usr/bin/python3",
        "-c",
        "print(open('/proc/1/status').read())",
    )
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def sha256_of(path: Path) -> str:
    with path.open("rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


@ON_BOTH
def test_a_200_mib_file_goes_in_and_back_with_memory_flat(
    api: ControllerClient,
    backend: Backend,
    big_file: tuple[Path, str],
    tmp_path: Path,
    docker_cli: str,
) -> None:
    source, expected = big_file
    before = server_peak_rss(api, backend, docker_cli)
    with api.connect_backend(backend.id) as client:
        tracemalloc.start()
        try:
            info = client.files.write("data/big.bin", source)
            client.files.download("data/big.bin", tmp_path / "back.bin")
            _, client_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert info.size == 200 * MIB
        seen = client.execute(
            "import hashlib\n"
            "digest = hashlib.sha256()\n"
            "with open('data/big.bin', 'rb') as f:\n"
            "    while chunk := f.read(1 << 20):\n"
            "        digest.update(chunk)\n"
            "digest.hexdigest()"
        )
        assert seen.value == expected, "user code reads what was uploaded"
        client.files.remove("data", recursive=True)
    assert sha256_of(tmp_path / "back.bin") == expected
    assert client_peak < CLIENT_PEAK_LIMIT, f"the client held {client_peak} bytes"
    growth = server_peak_rss(api, backend, docker_cli) - before
    assert growth < SERVER_GROWTH_LIMIT, f"the server's peak RSS grew {growth} bytes"


@ON_BOTH
@pytest.mark.parametrize("writer", ["replace", "rewrite"])
def test_a_download_while_user_code_writes_the_file_is_one_version(
    api: ControllerClient, backend: Backend, tmp_path: Path, writer: str
) -> None:
    # What an outside test found in the compose system: over unix:// most downloads
    # mixed versions of a file replaced meanwhile, and on every transport a file
    # rewritten in place came back with a length other than the size reported.
    path, stop = "versions/data.bin", "versions/stop"
    with api.connect_backend(backend.id) as client:
        client.files.write(path, b"\0" * SIZE)
        client.execute(WRITER.format(size=SIZE, path=path, stop=stop, mode=writer))
        whole = 0
        try:
            for n in range(8):
                try:
                    info = client.files.download(path, tmp_path / f"{n}.bin")
                except (Conflict, ConnectionLost):
                    assert writer == "rewrite", "a file renamed over is never refused"
                    continue
                data = (tmp_path / f"{n}.bin").read_bytes()
                assert one_version(data, writer), f"download {n} mixed versions"
                assert info.size == len(data), "the size reported is the size copied"
                whole += 1
        finally:
            client.files.write(stop, b"")
            client.execute("__import__('sys').beep_writer.join(10)")
            client.files.remove("versions", recursive=True)
    assert whole > 0 or writer == "rewrite"


@ON_BOTH
def test_paths_out_of_the_workspace_are_refused(
    api: ControllerClient, backend: Backend
) -> None:
    with api.connect_backend(backend.id) as client:
        client.execute(
            "import os\n"
            "os.symlink('/etc', 'etc-link')\n"
            "os.symlink('/etc/passwd', 'passwd-link')\n"
            "os.mkfifo('fifo')"
        )
        for path in (
            "../etc/passwd",
            "/etc/passwd",
            "etc-link/passwd",
            "passwd-link",
            "fifo",
        ):
            with pytest.raises(InvalidRequest):
                client.files.read(path)
        for path in ("etc-link/planted", "../planted", "/tmp/planted"):
            with pytest.raises(InvalidRequest):
                client.files.write(path, b"x")
        with pytest.raises(InvalidRequest):
            client.files.list("etc-link")
        with pytest.raises(InvalidRequest):
            client.files.rename("passwd-link", "../moved")
        with pytest.raises(NotFound):
            client.files.stat("missing")
        assert {"etc-link", "passwd-link", "fifo"} <= {
            i.name for i in client.files.list()
        }
        assert client.evaluate("__import__('os').path.exists('/tmp/planted')") is False
        client.files.remove("etc-link")
        client.files.remove("passwd-link")
        client.files.remove("fifo")
        assert client.evaluate("__import__('os').path.isdir('/etc')") is True


@pytest.mark.parametrize("kind", KINDS)
@ON_BOTH
def test_an_upload_over_the_quota_fails_and_leaves_nothing(
    api: ControllerClient, environment: str, kind: str
) -> None:
    backend = started(
        api, environment, kind, limits={"workspace_quota_bytes": SMALL_QUOTA}
    )
    with stopped_after(api, backend), api.connect_backend(backend.id) as client:
        client.files.write("small.bin", b"s" * MIB)
        with pytest.raises(QuotaExceeded):
            client.files.write("big.bin", os.urandom(SMALL_QUOTA))
        names = client.evaluate("sorted(__import__('os').listdir('.'))")
        assert names == ["small.bin"], "no partial or temporary file is left"
        usage = client.files.usage()
        assert (usage.root, usage.used, usage.quota) == (
            "/workspace",
            MIB,
            SMALL_QUOTA,
        )
