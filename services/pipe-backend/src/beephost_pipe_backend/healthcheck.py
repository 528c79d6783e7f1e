"""`beephost-pipe-backend healthcheck`: exit 0 when the server answers ping and is ready.

``ping`` needs no token (like HTTP's /ready and gRPC's health service), so the probe
reads none: the container's environment may hold only the token's digest.
"""

import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path

from beephost_core import activity

# Read without Settings (pydantic): a probe runs every few seconds, so it imports the
# stdlib only (settings.py uses the same default).
DEFAULT_SOCKET_PATH = "/tmp/beephost/pipe.sock"
ENV_PREFIX = "BEEPHOST_PIPE_BACKEND_"


def check_from_environment() -> tuple[bool, str]:
    """Probe the server the environment's settings describe."""
    path = Path(os.environ.get(f"{ENV_PREFIX}SOCKET_PATH", DEFAULT_SOCKET_PATH))
    return check(path)


def check(path: Path, timeout: float = 3.0) -> tuple[bool, str]:
    """Connect and ping; return (healthy, reason)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps({"id": 1, "type": "ping"}).encode() + b"\n")
            reply = json.loads(sock.makefile("rb").readline() or b"{}")
            if "error" in reply:
                return False, str(reply["error"].get("message"))
            result = reply.get("result", {})
    except (OSError, ValueError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if not result.get("ready"):
        return False, "server answers but has no ready worker"
    return True, "ready"


def idle_note(environ: Mapping[str, str] = os.environ) -> str:
    """`` idle=N`` for the health check's output (``beephost_core.activity``)."""
    return activity.idle_note(ENV_PREFIX, environ)
