"""An upload its client abandons leaves nothing, on every transport's own wire.

The client goes away mid-upload (the pipe connection closes, the HTTP connection drops
before the body's end, the gRPC call is cancelled): neither the file nor its temporary
file may stay, and the server goes on serving. The server's peak RSS is checked across
a large transfer too (/proc/PID/status VmHWM), so a server that buffered a whole file
would fail.
"""

import base64
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import beephost_client as bc
from beephost_core.paths import UPLOAD_PREFIX
from beephost_pb.exec.v1 import exec_pb2 as pb
from beephost_protocol import pb_files
from tests.integration.contract.servers import TRANSPORTS, Backend, ServerSet

MIB = 1 << 20
SERVER_GROWTH_LIMIT = 40 * MIB


def workspace_of(backend: Backend) -> Path:
    with bc.connect(backend.url, token=backend.token) as client:
        return Path(client.files.usage().root)


def temporary_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.name.startswith(UPLOAD_PREFIX)]


def wait_until_clean(root: Path, name: str) -> None:
    deadline = time.monotonic() + 10
    while temporary_files(root) or (root / name).exists():
        assert time.monotonic() < deadline, f"left behind: {temporary_files(root)}"
        time.sleep(0.05)


def abandon_pipe(backend: Backend, name: str) -> None:
    path = backend.url.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        stream = sock.makefile("rwb")

        def call(request_id: int, kind: str, **params: object) -> dict[str, object]:
            frame = {"id": request_id, "type": kind, "params": params}
            stream.write(json.dumps(frame).encode() + b"\n")
            stream.flush()
            reply: dict[str, object] = json.loads(stream.readline())
            return reply

        call(1, "hello")
        opened = call(2, "file.upload.open", path=name)["result"]
        assert isinstance(opened, dict)
        data = base64.b64encode(b"x" * MIB).decode()
        call(3, "file.upload.write", upload=opened["upload"], offset=0, data=data)
        stream.close()


def abandon_http(backend: Backend, name: str) -> None:
    host, port = backend.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        head = (
            f"PUT /api/files/{name} HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Length: {10 * MIB}\r\nExpect: 100-continue\r\n\r\n"
        )
        sock.sendall(head.encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 100")
        sock.sendall(b"x" * MIB)  # a tenth of what was announced


def abandon_grpc(backend: Backend, name: str) -> None:
    target = backend.url.removeprefix("grpc://")
    with grpc.insecure_channel(target) as channel:
        upload = channel.stream_unary(
            pb_files.UPLOAD_PATH,
            request_serializer=pb.UploadFileRequest.SerializeToString,
            response_deserializer=pb.FileInfo.FromString,
        )

        def messages() -> Iterator[pb.UploadFileRequest]:
            yield pb_files.upload_request(name, True, None)
            yield pb_files.data_request(b"x" * MIB)
            time.sleep(30)  # never finishes: the call is cancelled before

        future = upload.future(messages())
        time.sleep(0.5)
        future.cancel()  # type: ignore[no-untyped-call]  # untyped in grpc-stubs


ABANDON = {"pipe": abandon_pipe, "http": abandon_http, "grpc": abandon_grpc}


def test_a_grpc_upload_without_its_end_writes_nothing(
    backend_urls: dict[str, Backend],
) -> None:
    """A stream closed before ``end`` is refused: to the server a cancelled call can
    look like a closed one, and a cut file must never appear under its name."""
    backend = backend_urls["grpc"]
    root = workspace_of(backend)
    with grpc.insecure_channel(backend.url.removeprefix("grpc://")) as channel:
        upload = channel.stream_unary(
            pb_files.UPLOAD_PATH,
            request_serializer=pb.UploadFileRequest.SerializeToString,
            response_deserializer=pb.FileInfo.FromString,
        )
        messages = [
            pb_files.upload_request("no-end.bin", True, None),
            pb_files.data_request(b"x" * MIB),
        ]
        with pytest.raises(grpc.RpcError) as refused:
            upload(iter(messages))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "without its end message" in str(refused.value.details())
    wait_until_clean(root, "no-end.bin")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_abandoned_upload_leaves_nothing(
    backend_urls: dict[str, Backend], transport: str
) -> None:
    backend = backend_urls[transport]
    root = workspace_of(backend)
    name = f"abandoned-{transport}.bin"
    ABANDON[transport](backend, name)
    wait_until_clean(root, name)
    with bc.connect(backend.url, token=backend.token) as client:
        assert client.evaluate("1 + 1") == 2  # still serving


def peak_rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_servers_memory_stays_flat_over_a_large_transfer(
    server_set: ServerSet, transport: str, tmp_path: Path
) -> None:
    server = server_set.start(transport)
    assert server.process is not None
    source = tmp_path / "big.bin"
    with source.open("wb") as out:
        for _ in range(60):
            out.write(b"y" * MIB)
    before = peak_rss(server.process.pid)
    with bc.connect(server.backend.url, token=server.backend.token) as client:
        client.files.write("big.bin", source)
        client.files.download("big.bin", tmp_path / "back.bin")
        client.files.remove("big.bin")
    growth = peak_rss(server.process.pid) - before
    assert (tmp_path / "back.bin").stat().st_size == 60 * MIB
    assert growth < SERVER_GROWTH_LIMIT, f"the server's peak RSS grew {growth} bytes"
    server.stop()
