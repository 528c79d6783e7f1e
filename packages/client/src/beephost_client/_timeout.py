"""The Timeout value object every call runs under, and its default.

Its own module: the transports need it and ``_config`` builds the transports, so
holding it in ``_config`` made the two import each other.
"""

import math
from dataclasses import dataclass

from beephost_client._exceptions import InvalidArgument


@dataclass(frozen=True, slots=True)
class Timeout:
    """The finite time limits every call runs under.

    Args:
        request: Default deadline of a request, in seconds. It is sent to the server,
            which stops the code when it passes (``ExecutionTimeout``).
        connect: Seconds to open a connection and finish its handshake.
        grace: Extra seconds the client waits past ``request`` for the server's own
            answer (the server may take its kill grace to stop the code) before it
            gives up on its side.

    Example::

        client = beephost_client.connect(url, timeout=Timeout(request=120))
        client.evaluate("slow()", timeout=600)  # one call, a longer deadline
    """

    request: float = 30.0
    connect: float = 5.0
    grace: float = 5.0

    def __post_init__(self) -> None:
        for name in ("request", "connect", "grace"):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise InvalidArgument(
                    f"Timeout.{name} must be a finite number > 0: {value!r}"
                )

    def wait(self, deadline: float) -> float:
        """How long the client waits for the reply to a request with ``deadline``."""
        return deadline + self.grace


DEFAULT_TIMEOUT = Timeout()


def as_timeout(timeout: "Timeout | float") -> Timeout:
    """Accept a Timeout or a number of seconds (the request deadline)."""
    if isinstance(timeout, Timeout):
        return timeout
    return Timeout(request=float(timeout))
