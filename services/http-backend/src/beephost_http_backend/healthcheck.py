"""`beephost-http-backend healthcheck`: exit 0 when GET /ready answers 200.

Containers run it every few seconds, so it is stdlib only: it reads the two settings it
needs from the environment itself instead of importing Settings (pydantic would cost
ten times its run time). ``tests/unit/http_backend`` keeps the defaults and the
variable names equal to Settings'.
"""

import http.client
import json
import os
from collections.abc import Mapping
from pathlib import Path

ENV_PREFIX = "BEEPHOST_HTTP_BACKEND_"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5678


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
    conn = http.client.HTTPConnection(probe_host(host), port, timeout=timeout)
    try:
        conn.request("GET", "/ready")
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    if response.status == 200:
        return True, "ready"
    try:
        reason = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        reason = body[:200].decode("utf-8", "replace")
    return False, f"{response.status}: {reason}"


def idle_note(environ: Mapping[str, str] = os.environ) -> str:
    """`` idle=N``: the seconds the server reports being idle (its ACTIVITY_FILE), which
    the controller reads from the health check's output; empty without a report."""
    path = {k.upper(): v for k, v in environ.items()}.get(f"{ENV_PREFIX}ACTIVITY_FILE")
    try:
        return f" idle={int(Path(path).read_text())}" if path else ""
    except (OSError, ValueError):
        return ""
