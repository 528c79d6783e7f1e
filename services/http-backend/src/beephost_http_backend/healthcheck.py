"""`beephost-http-backend healthcheck`: exit 0 when GET /ready answers 200.

Docker runs it every 5 s in each container, so it imports little: it reads the two
settings it needs from the environment itself instead of importing Settings (pydantic
would cost ten times its run time), and speaks HTTP/1.0 over a socket itself
(http.client, with the email parser it imports, was 50 ms of its 120 ms of CPU).
``tests/unit/test_healthchecks.py`` keeps the defaults and the variable names equal to
Settings'.
"""

import os
import socket
from collections.abc import Mapping

from beephost_core import activity

ENV_PREFIX = "BEEPHOST_HTTP_BACKEND_"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5678
#: The most of a reply it reads: /ready answers a few hundred bytes.
MAX_REPLY = 64 << 10


def target(environ: Mapping[str, str] = os.environ) -> tuple[str, int]:
    """The (host, port) the server listens on, as Settings would read them."""
    # Settings match variable names case-insensitively (beephost_core.envsettings).
    values = {k.upper(): v for k, v in environ.items()}
    host = values.get(f"{ENV_PREFIX}HOST", DEFAULT_HOST)
    port = int(values.get(f"{ENV_PREFIX}PORT", DEFAULT_PORT))
    return host, port


def probe_host(host: str) -> str:
    """Where to reach a server bound to ``host`` from the same machine."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def check(host: str, port: int, timeout: float = 3.0) -> tuple[bool, str]:
    """GET /ready; return (healthy, reason). /ready needs no token."""
    try:
        with socket.create_connection((probe_host(host), port), timeout) as sock:
            # HTTP/1.0: the server closes the connection after its reply.
            sock.sendall(b"GET /ready HTTP/1.0\r\n\r\n")
            reply = _read_reply(sock)
    except OSError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
        return False, f"not an HTTP reply: {reply[:100]!r}"
    status = status_line[1].decode("ascii", "replace")
    if status == "200":
        return True, "ready"
    return False, f"{status}: {_error_message(body)}"


def _read_reply(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < MAX_REPLY:
        chunk = sock.recv(MAX_REPLY - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _error_message(body: bytes) -> str:
    import json  # only a failing probe reads an error document

    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace")
    return str(message)


def idle_note(environ: Mapping[str, str] = os.environ) -> str:
    """`` idle=N`` for the health check's output (``beephost_core.activity``)."""
    return activity.idle_note(ENV_PREFIX, environ)
