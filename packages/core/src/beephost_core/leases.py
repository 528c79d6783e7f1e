"""Leases: client-chosen ids that own the handles a client created in ``default``.

A client that dies without releasing its objects must not fill the shared session. Over
the pipe the connection is the owner; HTTP and gRPC have no connection that lives as
long as a client, so the client names a lease on each request and renews it while it
holds objects. This module only keeps time (sans-I/O): the executor owns the handles.
"""

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from beephost_protocol.errors import InvalidRequest

# Long enough for 128 random bits in base64url or hex; short enough for any header.
LEASE_ID = re.compile(r"[A-Za-z0-9_-]{16,128}")


@dataclass(frozen=True, slots=True)
class LeaseOwner:
    """The executor's owner key of a lease (apart from pipe connections)."""

    id: str


def check_lease(lease: str) -> str:
    """``lease`` if it is a well-formed id.

    Raises:
        InvalidRequest: Not 16 to 128 characters of A-Z, a-z, 0-9, '_' and '-'.
    """
    if not LEASE_ID.fullmatch(lease):
        raise InvalidRequest(
            "a lease id is 16 to 128 characters of A-Z, a-z, 0-9, '_' and '-'",
            {"lease": lease[:200]},
        )
    return lease


class Leases:
    """When each lease was last used; a lease unused for ``ttl`` seconds has expired."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._seen: dict[str, float] = {}

    def touch(self, lease: str) -> None:
        """A request or renewal under ``lease``: it lives ``ttl`` seconds from now."""
        self._seen[lease] = self._clock()

    def forget(self, lease: str) -> None:
        self._seen.pop(lease, None)

    def expired(self) -> list[str]:
        """Forget and return the leases unused for longer than ``ttl``."""
        now = self._clock()
        gone = [lease for lease, seen in self._seen.items() if now - seen > self.ttl]
        for lease in gone:
            del self._seen[lease]
        return gone
