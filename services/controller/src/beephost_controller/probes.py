"""The controller's own readiness probe of a backend, through the client SDK.

Docker's health check runs one interval after the start at the earliest (engine 20.10
has no --start-interval), which would put every start-to-ready above 2 s; a backend
answering ``info`` through its own transport is ready, whatever Docker has seen so far.
"""

from beephost_client import Timeout, connect
from beephost_protocol.errors import BeepHostError


def probe(endpoint: str, token: str | None, timeout: float = 1.0) -> bool:
    """Whether the backend at ``endpoint`` answers a request within ``timeout``."""
    limits = Timeout(request=timeout, connect=timeout, grace=timeout)
    try:
        with connect(endpoint, token=token, timeout=limits) as client:
            client.info(timeout=timeout)
    except (BeepHostError, OSError):
        return False
    return True
