"""When to read a sandbox's idleness again, for an engine that pays for each read.

On Kubernetes a read is an exec into the pod (the API server, the kubelet and the
runtime each do work), and the supervisor sweeps every backend on one thread: one read
per backend per sweep does not scale to hundreds of backends. Between two reads the
idleness is estimated as the last read plus the time since, an upper bound (a request
meanwhile only lowers it). So a backend need not be read while that bound is below its
idle timeout, and must be read before the bound is used to stop it: a stop is only ever
decided on a fresh read, never on an estimate (a request just after a read would
otherwise be stopped on). Besides, a read at least every tenth of the timeout (and not
more often than ``min_interval``) keeps what the console and the API show close.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class _Read:
    at: float  # the clock's time of the read
    seconds: float | None  # what it said (None: not known)


class IdleReads:
    """Each backend's last idleness read, and whether the next look needs a new one."""

    def __init__(self, clock: Callable[[], float], min_interval: float) -> None:
        self._clock = clock
        self._min_interval = min_interval
        self._reads: dict[str, _Read] = {}

    def seconds(
        self, backend_id: str, timeout: float, read: Callable[[], float | None]
    ) -> float | None:
        """How long the backend has been idle: ``read()`` when due, else an estimate
        below ``timeout``, or None (not known now). Never read more often than
        ``min_interval``: a backend left past its timeout (not stopped: not ready, or
        claimed from a pool within its timeout) is not read at every look."""
        now = self._clock()
        last = self._reads.get(backend_id)
        if last is not None:
            elapsed = now - last.at
            if last.seconds is not None:
                estimate = last.seconds + elapsed
                refresh = max(self._min_interval, timeout / 10)
                if estimate < timeout and elapsed < refresh:
                    return estimate
            if elapsed < self._min_interval:
                # Read a moment ago (and failed, or the estimate reached the
                # timeout): not again yet, and no stop on an estimate meanwhile.
                return None
        seconds = read()
        self._reads[backend_id] = _Read(now, seconds)
        return seconds

    def forget(self, backend_id: str) -> None:
        self._reads.pop(backend_id, None)
