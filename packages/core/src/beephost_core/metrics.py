"""Prometheus metrics of the execution core, shared by every backend.

Request counts and latencies are recorded per request, so they are kept in plain Python
numbers and turned into metric families only when scraped: a prometheus_client Histogram
takes a lock and walks its buckets on every observation, which showed up in the pipe's
round trip. Gauges are computed at scrape time from the executor's state.
"""

import bisect
from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
)  # fmt: skip


class _RequestCollector(Collector):
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

    def collect(self) -> Iterator[Metric]:
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

    def describe(self) -> Iterator[Metric]:
        return iter(())


class CoreMetrics:
    """One registry per executor, so tests and embedded servers never collide."""

    def __init__(
        self, transport: str, registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.transport = transport
        self._requests = _RequestCollector(transport)
        self.registry.register(self._requests)
        self.sessions = Gauge(
            "beephost_sessions",
            "Open sessions, the default one included.",
            registry=self.registry,
        )
        self.handles = Gauge(
            "beephost_handles",
            "Live remote-object handles over all sessions.",
            registry=self.registry,
        )
        self.worker_restarts = Counter(
            "beephost_worker_restarts",
            "Workers replaced after they died or were killed, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.worker_spawn = Histogram(
            "beephost_worker_spawn_seconds",
            "Time to start a worker process until it answers.",
            registry=self.registry,
        )

    def serve(self, port: int, host: str) -> None:
        """Serve the registry for Prometheus on ``host:port``; port 0 serves nothing."""
        if port:
            start_http_server(port, host, registry=self.registry)

    def observe(self, command: str, outcome: str, seconds: float) -> None:
        """Record one request (cheap: plain arithmetic, no locks)."""
        self._requests.observe(command, outcome, seconds)

    def track(
        self, sessions: Callable[[], float], handles: Callable[[], float]
    ) -> None:
        """Compute the session and handle gauges from live state when scraped."""
        self.sessions.set_function(sessions)
        self.handles.set_function(handles)
