"""What the app holds for its lifetime: settings, the executor, metrics, drain state."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from beephost_core import CoreMetrics, Executor
from beephost_core.early_worker import EarlyWorker
from beephost_core.tallies import CounterValue, HistogramValue, Tallies
from beephost_http_backend.settings import Settings

logger = logging.getLogger(__name__)

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

    def __init__(self, tallies: Tallies) -> None:
        self.requests = tallies.counter(
            "beephost_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
        )
        self.latency = tallies.histogram(
            "beephost_http_request_seconds",
            "Time from the request's arrival to the end of its response.",
            ["method", "route"],
            buckets=_BUCKETS,
        )
        self.in_progress = tallies.gauge(
            "beephost_http_requests_in_progress", "HTTP requests being served."
        )
        self._children: dict[
            tuple[str, str, int], tuple[CounterValue, HistogramValue]
        ] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # labels() hashes its arguments and builds a key: cache the children per key.
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


def new_state(
    settings: Settings,
    executor: Executor | None = None,
    early: EarlyWorker | None = None,
) -> BackendState:
    """The state over ``executor`` (by default a new one from ``settings``, which
    adopts ``early`` as its default session's worker if it fits).

    Building an Executor starts nothing (``serving`` starts it), so pass one that is
    not started. It is built here rather than at the start so that the HTTP metrics
    can register in its registry and the gate can hold it from the beginning.
    """
    executor = executor or Executor(
        settings.executor_config(), CoreMetrics("http"), early
    )
    return BackendState(
        settings=settings,
        executor=executor,
        metrics=HttpMetrics(executor.metrics.tallies),
    )


@asynccontextmanager
async def serving(state: BackendState) -> AsyncIterator[None]:
    """The executor started (the default session's worker up) until the exit."""
    started = time.perf_counter()
    await state.executor.start()
    logger.info(
        "executor ready in %.3fs (environment %s)",
        time.perf_counter() - started,
        state.settings.environment,
    )
    try:
        yield
    finally:
        # After the server's drain: requests still running were answered `unavailable`
        # by the middleware; killing the workers ends streamed execs left behind.
        await state.executor.aclose()
        if state.background:
            await asyncio.wait(state.background, timeout=5)
