"""The egress proxy's wire, as tests speak it: a CONNECT with a backend's credential,
and the counters its metrics socket serves.

Shared by the proxy's integration test (serve.py on loopback) and the image's end-to-end
test (the hardened container's Unix sockets), so both read the proxy the same way.
"""

import base64
import re
import socket
from pathlib import Path

COUNTER = re.compile(r'^beephost_egress_total\{decision="(\w+)"\} (\S+)$', re.M)


def connect_request(host: str, port: int, credential: str | None) -> bytes:
    """A ``CONNECT host:port``, with ``Proxy-Authorization: Basic`` for ``credential``
    (``BACKEND_ID:TOKEN``) unless it is ``None``."""
    auth = ""
    if credential is not None:
        encoded = base64.b64encode(credential.encode()).decode()
        auth = f"Proxy-Authorization: Basic {encoded}\r\n"
    return (
        f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n".encode()
    )


def read_head(sock: socket.socket) -> bytes:
    """Bytes up to the end of a reply's head (or what came before the peer closed)."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head


def unix_get(path: Path, target: str = "/metrics") -> tuple[str, str]:
    """GET over HTTP/1.0 on a Unix socket: (status line, body)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(f"GET {target} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    return head.splitlines()[0], body


def egress_counters(metrics_text: str) -> dict[str, float]:
    """``beephost_egress_total`` by decision, from Prometheus text."""
    return {decision: float(value) for decision, value in COUNTER.findall(metrics_text)}
