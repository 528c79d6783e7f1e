"""Prometheus metrics of the controller, on its own registry."""

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from beephost_controller.ports import RELAY_OUTCOMES
from beephost_controller.rows import JobRow
from beephost_controller.schemas import BACKEND_TYPES


class ControllerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "beephost_controller_jobs",
            "Finished jobs by kind and outcome.",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "beephost_controller_job_seconds",
            "Job duration from start to finish, by kind.",
            ["kind"],
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640),
            registry=self.registry,
        )
        self.requests = Counter(
            "beephost_controller_api_requests",
            "API requests by route and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.backends = Gauge(
            "beephost_controller_backends",
            "Backends by type and state.",
            ["type", "state"],
            registry=self.registry,
        )
        self.start_to_ready = Histogram(
            "beephost_controller_backend_start_to_ready_seconds",
            "From container start to the backend answering, by type.",
            ["type"],
            buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
            registry=self.registry,
        )
        self.reconciliations = Counter(
            "beephost_controller_reconciliations",
            "Reconciliation actions: adopted, missing, orphan_removed.",
            ["action"],
            registry=self.registry,
        )

        self.restarts = Counter(
            "beephost_controller_backend_restarts",
            "Backends the controller restarted after they exited, by type and reason.",
            ["type", "reason"],
            registry=self.registry,
        )
        self.stops = Counter(
            "beephost_controller_backend_stops",
            "Backends the controller stopped on its own, by type and reason (expired: "
            "their lifetime ended).",
            ["type", "reason"],
            registry=self.registry,
        )

        self.pool_size = Gauge(
            "beephost_controller_pool_size",
            "Ready, unclaimed backends each warm pool keeps, by environment and type.",
            ["environment", "type"],
            registry=self.registry,
        )
        self.pool_members = Gauge(
            "beephost_controller_pool_backends",
            "Unclaimed pool members by environment, type and state (ready, starting).",
            ["environment", "type", "state"],
            registry=self.registry,
        )
        self.pool_claims = Counter(
            "beephost_controller_pool_claims",
            "Starts that a warm pool served (hit) or that started cold although a "
            "pool serves their kind of start (miss), by type.",
            ["type", "result"],
            registry=self.registry,
        )

    def track_egress(self, counts: Callable[[], dict[str, int]]) -> None:
        """Serve ``beephost_egress_total{decision}``: the egress proxy's decisions,
        read from it (``counts``) at each scrape. Compose's Prometheus scrapes the
        controller, not the proxy, which has no network port."""
        self.registry.register(
            _CountsCollector(
                "beephost_egress",
                "Connections the egress proxy allowed and refused, by decision.",
                "decision",
                EGRESS_DECISIONS,
                counts,
            )
        )

    def track_relays(self, counts: Callable[[], dict[str, int]]) -> None:
        """Serve ``beephost_controller_relays_ahead_total{outcome}``: the engine's
        relays made ahead of their backends, read from it (``counts``) at each
        scrape."""
        self.registry.register(
            _CountsCollector(
                "beephost_controller_relays_ahead",
                "Relays made ahead of their backends (made), starts that took one "
                "(taken) or found none of their kind (missed), and those removed "
                "unused (discarded).",
                "outcome",
                RELAY_OUTCOMES,
                counts,
            )
        )

    def count_backends(self, states: list[tuple[str, str]]) -> None:
        """Set the backends gauge from (type, status) pairs; absent pairs read 0."""
        counts: dict[tuple[str, str], int] = {}
        for pair in states:
            counts[pair] = counts.get(pair, 0) + 1
        for kind in BACKEND_TYPES:
            for state in ("starting", "ready", "unhealthy", "exited"):
                self.backends.labels(kind, state).set(counts.get((kind, state), 0))

    def job_finished(self, row: JobRow) -> None:
        self.jobs.labels(row.kind, row.status).inc()
        if row.started_at is not None and row.finished_at is not None:
            self.job_seconds.labels(row.kind).observe(row.finished_at - row.started_at)


#: The decisions ``beephost_egress_total`` always reports (0 before the first).
EGRESS_DECISIONS = ("allowed", "refused")


class _CountsCollector(Collector):
    """A counter another part of the controller keeps (``counts``: value by label),
    read at each scrape; the ``always`` labels are reported at 0 before their first."""

    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        always: tuple[str, ...],
        counts: Callable[[], dict[str, int]],
    ) -> None:
        self.name, self.documentation = name, documentation
        self.label, self.always, self.counts = label, always, counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        counts = self.counts()
        for value in sorted({*self.always, *counts}):
            family.add_metric([value], counts.get(value, 0))
        yield family

    def describe(self) -> Iterator[CounterMetricFamily]:
        return iter(())
