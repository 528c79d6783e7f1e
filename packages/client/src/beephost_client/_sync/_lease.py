"""Keeping the client's lease alive from a daemon thread (docs/protocol/http.md, "Leases").

Hand-written twin of ``_async/_lease.py``. The thread runs only while the client holds
objects in ``default``; it renews the lease three times per TTL, so that the server
releases those objects soon after the client's process dies, and never while it lives.
Transports are safe to call from several threads, so it shares the client's.
"""

import logging
import threading
from collections.abc import Callable

from beephost_client import _base
from beephost_client._transports.base import BaseTransport
from beephost_protocol.errors import BeepHostError

logger = logging.getLogger("beephost_client")


class LeaseKeeper:
    """Renews ``transport.lease`` while ``holds()`` is true; started again on demand."""

    def __init__(
        self, transport: BaseTransport, holds: Callable[[], bool], timeout: float
    ) -> None:
        self._transport = transport
        self._holds = holds
        self._timeout = timeout  # of one renewal
        # Guards the decision to start a thread against one deciding to end.
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._interval: float | None = None  # known from the first renewal on

    def start(self) -> None:
        """Run the renewals, unless they run already (called on each new object)."""
        lease = self._transport.lease
        if lease is None:
            return
        with self._lock:
            if self._thread is None and not self._stopped.is_set():
                self._thread = threading.Thread(
                    target=self._run, args=(lease,), name="beephost-lease", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        """Stop for good (the client closes); a renewal under way ends on its own."""
        self._stopped.set()

    def _run(self, lease: str) -> None:
        while True:
            if self._interval is not None and self._stopped.wait(self._interval):
                return
            with self._lock:
                if self._stopped.is_set() or not self._holds():
                    self._thread = None  # nothing to keep: started with the next object
                    return
            try:
                result = self._transport.handle(
                    _base.BaseClient._renew_lease(lease), timeout=self._timeout
                )
                # A malformed reply (BadReply) stops the renewals, as a refusal does.
                interval = _base.renewal_interval(result)
            except BeepHostError as exc:
                retry = _base.renewal_failed(exc, self._interval)
                if retry is None:
                    logger.warning("the server does not renew leases: %s", exc)
                    self._stopped.set()
                    return
                logger.debug("lease renewal failed, retrying in %ss: %r", retry, exc)
                self._interval = retry
                continue
            self._interval = interval
