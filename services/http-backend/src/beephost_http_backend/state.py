"""What the app holds for its lifetime: settings, the executor, metrics, drain state."""

import asyncio
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from beephost_core import Executor
from beephost_http_backend.settings import Settings

_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)


class HttpMetrics:
    """HTTP request metrics, registered beside the core's in the executor's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "beephost_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "beephost_http_request_seconds",
            "Time from the request's arrival to the end of its response.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.in_progress = Gauge(
            "beephost_http_requests_in_progress",
            "HTTP requests being served.",
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # labels() takes a lock and hashes its arguments: cache the children per key.
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


@dataclass(eq=False)
class BackendState:
    """One per app; the routes reach it through ``deps``, the middleware directly."""

    settings: Settings
    executor: Executor
    metrics: HttpMetrics
    draining: bool = False
    # Streamed execs outlive their response when the client goes away; keep them
    # referenced until they end (the session stays busy until then).
    background: set["asyncio.Task[object]"] = field(default_factory=set)

    def begin_drain(self) -> None:
        """Called from the signal handler: /ready fails and new API requests get 503."""
        self.draining = True

    @property
    def ready(self) -> bool:
        return self.executor.ready and not self.draining
