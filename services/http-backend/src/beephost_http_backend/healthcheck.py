"""`beephost-http-backend healthcheck`: exit 0 when GET /ready answers 200."""

import http.client
import json


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
