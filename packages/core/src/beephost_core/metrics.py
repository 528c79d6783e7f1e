"""Prometheus metrics of the execution core, shared by every backend.

Request counts and latencies are recorded per request, so they are kept in plain Python
numbers and turned into metric families only when scraped, like every metric of a
backend (``beephost_core.tallies``: prometheus_client is imported only then). Gauges are
computed at scrape time from the executor's state.
"""

from __future__ import annotations

import asyncio
import bisect
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from beephost_core.listeners import bind_tcp
from beephost_core.tallies import Tallies

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

#: Seconds from ``serve`` to the first metrics answered.
EXPOSE_DELAY = 0.5

LATENCY_BUCKETS = (
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
)  # fmt: skip


class _RequestCollector:
    """beephost_requests_total and beephost_request_seconds, folded at scrape time."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.counts: dict[tuple[str, str], int] = {}
        # per command: one slot per bucket plus +Inf, then the sum
        self.latency: dict[str, list[float]] = {}

    def observe(self, command: str, outcome: str, seconds: float) -> None:
        key = (command, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1
        slots = self.latency.get(command)
        if slots is None:
            slots = self.latency[command] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        slots[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        slots[-1] += seconds

    def families(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import (
            CounterMetricFamily,
            HistogramMetricFamily,
        )

        requests = CounterMetricFamily(
            "beephost_requests",
            "Requests handled, by command and outcome (ok or an error code).",
            labels=["transport", "command", "outcome"],
        )
        for (command, outcome), count in list(self.counts.items()):
            requests.add_metric([self.transport, command, outcome], count)
        latency = HistogramMetricFamily(
            "beephost_request_seconds",
            "Time from receiving a request to its reply, by command.",
            labels=["transport", "command"],
        )
        for command, slots in list(self.latency.items()):
            slots = list(slots)
            cumulative, buckets = 0.0, []
            for bound, in_bucket in zip(
                (*map(str, LATENCY_BUCKETS), "+Inf"), slots[:-1], strict=True
            ):
                cumulative += in_bucket
                buckets.append((bound, cumulative))
            latency.add_metric([self.transport, command], buckets, slots[-1])
        yield requests
        yield latency


class CoreMetrics:
    """One registry per executor, so tests and embedded servers never collide."""

    def __init__(self, transport: str) -> None:
        self.tallies = Tallies()
        self.transport = transport
        self._requests = _RequestCollector(transport)
        self.tallies.add(self._requests)
        self.sessions = self.tallies.gauge(
            "beephost_sessions", "Open sessions, the default one included."
        )
        self.handles = self.tallies.gauge(
            "beephost_handles", "Live remote-object handles over all sessions."
        )
        self.worker_restarts = self.tallies.counter(
            "beephost_worker_restarts",
            "Workers replaced after they died or were killed, by reason.",
            ["reason"],
        )
        self.worker_spawn = self.tallies.histogram(
            "beephost_worker_spawn_seconds",
            "Time to start a worker process until it answers.",
        )

    @property
    def registry(self) -> CollectorRegistry:
        """The Prometheus registry of every metric the server records (the
        transport's too): prometheus_client is imported on first use."""
        return self.tallies.registry

    def serve(self, port: int, host: str) -> None:
        """Serve every metric for Prometheus on ``host:port``; port 0 serves nothing.

        The port is bound now (one that is taken fails here), but answers begin
        EXPOSE_DELAY later, on a thread that imports prometheus_client first: a cold
        start's first requests come before that import. A scrape sent meanwhile waits
        in the socket's backlog.

        Raises:
            OSError: The port cannot be bound.
        """
        if not port:
            return
        sock = bind_tcp(host, port)
        asyncio.get_running_loop().call_later(EXPOSE_DELAY, self._expose, sock)

    def _expose(self, sock: socket.socket) -> None:
        def expose() -> None:
            from beephost_core.exposition import serve_on

            serve_on(sock, self.registry)

        threading.Thread(target=expose, name="metrics", daemon=True).start()

    def observe(self, command: str, outcome: str, seconds: float) -> None:
        """Record one request (cheap: plain arithmetic, no locks)."""
        self._requests.observe(command, outcome, seconds)

    def track(
        self, sessions: Callable[[], float], handles: Callable[[], float]
    ) -> None:
        """Compute the session and handle gauges from live state when scraped."""
        self.sessions.set_function(sessions)
        self.handles.set_function(handles)
