"""The HTTP backend's health probe against canned replies on a loopback socket (it
speaks HTTP/1.0 itself): what it reports for each."""

import socket
import threading
from collections.abc import Iterator

import pytest

from beephost_http_backend import healthcheck


@pytest.fixture
def replying() -> Iterator["Replier"]:
    replier = Replier()
    yield replier
    replier.close()


class Replier:
    """A loopback server that reads one request and sends ``reply``, then closes."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        self._thread: threading.Thread | None = None

    def send(self, reply: bytes) -> None:
        def serve_one() -> None:
            conn, _ = self.listener.accept()
            with conn:
                self.requests.append(conn.recv(4096))
                conn.sendall(reply)

        self._thread = threading.Thread(target=serve_one, daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join(5)
        self.listener.close()


def test_a_200_is_ready_and_the_request_is_http_1_0(replying: Replier) -> None:
    replying.send(b'HTTP/1.1 200 OK\r\ncontent-length: 16\r\n\r\n{"ready": true}\n')
    assert healthcheck.check("0.0.0.0", replying.port) == (True, "ready")
    assert replying.requests == [b"GET /ready HTTP/1.0\r\n\r\n"]


def test_a_refusal_reports_the_error_documents_message(replying: Replier) -> None:
    body = b'{"error": {"code": "unavailable", "message": "no ready worker"}}'
    replying.send(b"HTTP/1.1 503 Service Unavailable\r\n\r\n" + body)
    assert healthcheck.check("127.0.0.1", replying.port) == (
        False,
        "503: no ready worker",
    )


def test_a_reply_that_is_not_http_is_unhealthy(replying: Replier) -> None:
    replying.send(b"SSH-2.0-OpenSSH\r\n")
    healthy, reason = healthcheck.check("127.0.0.1", replying.port)
    assert not healthy
    assert reason.startswith("not an HTTP reply: b'SSH-2.0")


def test_a_body_that_is_not_json_is_quoted(replying: Replier) -> None:
    replying.send(b"HTTP/1.1 502 Bad Gateway\r\n\r\n<html>bad gateway</html>")
    assert healthcheck.check("127.0.0.1", replying.port) == (
        False,
        "502: <html>bad gateway</html>",
    )


def test_a_server_that_never_answers_times_out(replying: Replier) -> None:
    # Accepted by the kernel's backlog, never read: the probe's timeout ends it.
    healthy, reason = healthcheck.check("127.0.0.1", replying.port, timeout=0.2)
    assert not healthy
    assert reason.startswith("TimeoutError")
