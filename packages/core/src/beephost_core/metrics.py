"""Prometheus metrics of the execution core, shared by every backend."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.0002,
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


class CoreMetrics:
    """One registry per executor, so tests and embedded servers never collide."""

    def __init__(
        self, transport: str, registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.transport = transport
        self.requests = Counter(
            "beephost_requests",
            "Requests handled, by command and outcome (ok or an error code).",
            ["transport", "command", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "beephost_request_seconds",
            "Time from receiving a request to its reply, by command.",
            ["transport", "command"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
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
        self._children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self.worker_spawn = Histogram(
            "beephost_worker_spawn_seconds",
            "Time to start a worker process until it answers.",
            registry=self.registry,
        )

    def observe(self, command: str, outcome: str, seconds: float) -> None:
        # Label lookups take a lock and hash the labels; cache the children per key.
        key = (command, outcome)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(self.transport, command, outcome),
                self.latency.labels(self.transport, command),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
