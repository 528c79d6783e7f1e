"""The stdlib gRPC health probe's encoding and decoding, against grpc's own messages.

tests/integration/rpc/test_rpc_lifecycle.py runs the probe against real servers.
"""

import socket
import subprocess
import sys
import threading

import pytest
from grpc_health.v1 import health_pb2

from beephost_rpc_backend import healthcheck


def framed(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


@pytest.mark.parametrize("status", [0, 1, 2, 3])
def test_reads_the_status_grpc_encodes(status: int) -> None:
    reply = health_pb2.HealthCheckResponse(status=status)
    assert healthcheck.health_status(framed(reply.SerializeToString())) == status


def test_skips_fields_it_does_not_know() -> None:
    # A newer HealthCheckResponse may carry more fields: varint, bytes, fixed64/32.
    unknown = b"\x10\x96\x01" + b"\x1a\x03abc" + b"\x21" + bytes(8) + b"\x2d" + bytes(4)
    assert healthcheck.health_status(framed(unknown + b"\x08\x01")) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x01\x00\x00\x00\x00",
        framed(b"\x08")[:-1] + b"\xff",
        b"\x00\x00\x00\x00\x05",
    ],
    ids=["empty", "compressed", "bad-varint", "truncated"],
)
def test_malformed_replies_are_value_errors(body: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each has its own message
        healthcheck.health_status(body)


@pytest.mark.parametrize("service", ["", "beephost.exec.v1.Executor", "x" * 300])
def test_the_request_carries_the_service(service: str) -> None:
    request = healthcheck.check_request(service)
    assert request.startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    # The last frame is DATA on stream 1 with END_STREAM, holding the gRPC message.
    frames, at = [], 24
    while at < len(request):
        length = int.from_bytes(request[at : at + 3], "big")
        frames.append(
            (request[at + 3], request[at + 4], request[at + 9 : at + 9 + length])
        )
        at += 9 + length
    assert [(kind, flags) for kind, flags, _ in frames] == [(4, 0), (1, 4), (0, 1)]
    assert healthcheck.METHOD in frames[1][2]
    body = frames[2][2]
    parsed = health_pb2.HealthCheckRequest.FromString(body[5:])
    assert parsed.service == service


def test_a_server_that_hangs_up_is_unavailable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def hang_up() -> None:
            conn, _ = server.accept()
            conn.recv(1024)
            conn.close()

        thread = threading.Thread(target=hang_up)
        thread.start()
        healthy, reason = healthcheck.check("127.0.0.1", port, timeout=5)
        thread.join(5)
    assert not healthy
    assert reason.startswith("UNAVAILABLE: ValueError: the server closed")


def test_the_command_imports_neither_grpc_nor_pydantic() -> None:
    # It runs every 5 s inside the backend's limits: that is the point of it. Of the
    # core it loads ``activity`` only (the package's exports load on first use).
    code = (
        "import sys\n"
        "from beephost_rpc_backend import __main__ as m\n"
        "from beephost_rpc_backend import healthcheck\n"
        "print(sorted(n for n in ('grpc', 'pydantic', 'prometheus_client', "
        "'beephost_core.executor', 'asyncio') if n in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
