"""Keeping the client's lease alive from an asyncio task (docs/protocol/http.md, "Leases").

Hand-written (not generated): the sync twin, ``_sync/_lease.py``, uses a daemon thread.
The task runs only while the client holds objects in ``default``; it renews the lease
three times per TTL, so that the server releases those objects soon after the client
dies, and never while it lives.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable

from beephost_client import _base
from beephost_client._transports.base import AsyncBaseTransport
from beephost_protocol.errors import BeepHostError

logger = logging.getLogger("beephost_client")


class LeaseKeeper:
    """Renews ``transport.lease`` while ``holds()`` is true; started again on demand."""

    def __init__(
        self,
        transport: AsyncBaseTransport,
        holds: Callable[[], bool],
        timeout: float,
    ) -> None:
        self._transport = transport
        self._holds = holds
        self._timeout = timeout  # of one renewal
        self._task: asyncio.Task[None] | None = None
        self._interval: float | None = None  # known from the first renewal on
        self._stopped = False

    def start(self) -> None:
        """Run the renewals, unless they run already (called on each new object)."""
        lease = self._transport.lease
        if lease is None or self._stopped:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(lease))

    async def stop(self) -> None:
        """Stop for good (the client closes)."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, lease: str) -> None:
        while True:
            if self._interval is not None:
                await asyncio.sleep(self._interval)
            if not self._holds():
                return  # nothing to keep: started again with the next object
            try:
                result = await self._transport.handle_async(
                    _base.BaseClient._renew_lease(lease), timeout=self._timeout
                )
                # A malformed reply (BadReply) stops the renewals, as a refusal does.
                interval = _base.renewal_interval(result)
            except BeepHostError as exc:
                retry = _base.renewal_failed(exc, self._interval)
                if retry is None:
                    logger.warning("the server does not renew leases: %s", exc)
                    self._stopped = True
                    return
                logger.debug("lease renewal failed, retrying in %ss: %r", retry, exc)
                self._interval = retry
                continue
            self._interval = interval
