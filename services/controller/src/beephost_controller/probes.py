"""The controller's own readiness probe of a backend, through the client SDK.

Docker's health check runs one interval after the start at the earliest (engine 20.10
has no --start-interval), which would put every start-to-ready above 2 s; a backend
that evaluates through its own transport is ready, whatever Docker has seen so far.
The probe evaluates ``None`` in the default session: it binds no name, and unlike
``info`` (which lists the environment's packages with importlib.metadata) it costs the
worker neither time nor ~4 MiB of memory it would keep.
"""

from beephost_client import Timeout, connect
from beephost_protocol.errors import BeepHostError


def probe(endpoint: str, token: str | None, timeout: float = 1.0) -> bool:
    """Whether the backend at ``endpoint`` answers a request within ``timeout``."""
    limits = Timeout(request=timeout, connect=timeout, grace=timeout)
    try:
        with connect(endpoint, token=token, timeout=limits) as client:
            client.evaluate("None", timeout=timeout)
    except (BeepHostError, OSError):
        return False
    return True
