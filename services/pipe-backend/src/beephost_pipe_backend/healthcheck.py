"""`beephost-pipe-backend healthcheck`: exit 0 when the server answers ping and is ready."""

import json
import os
import socket
from pathlib import Path

# Read without pydantic-settings: a probe runs every few seconds, so it imports the
# stdlib only (settings.py uses the same default).
DEFAULT_SOCKET_PATH = "/tmp/beephost/pipe.sock"
_PREFIX = "BEEPHOST_PIPE_BACKEND_"


def check_from_environment() -> tuple[bool, str]:
    """Probe the server the environment's settings describe."""
    path = Path(os.environ.get(f"{_PREFIX}SOCKET_PATH", DEFAULT_SOCKET_PATH))
    return check(path, os.environ.get(f"{_PREFIX}TOKEN") or None)


def check(path: Path, token: str | None, timeout: float = 3.0) -> tuple[bool, str]:
    """Connect, optionally authenticate, ping; return (healthy, reason)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            frames = [{"id": 1, "type": "ping"}]
            if token:
                frames.insert(0, {"id": 0, "type": "hello", "params": {"token": token}})
            sock.sendall(b"".join(json.dumps(f).encode() + b"\n" for f in frames))
            reader = sock.makefile("rb")
            for _ in frames:
                reply = json.loads(reader.readline() or b"{}")
                if "error" in reply:
                    return False, str(reply["error"].get("message"))
            result = reply.get("result", {})
    except (OSError, ValueError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if not result.get("ready"):
        return False, "server answers but has no ready worker"
    return True, "ready"
