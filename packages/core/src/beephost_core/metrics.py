"""Prometheus metrics of the execution core, shared by every backend.

Request counts and latencies are recorded per request, so they are kept in plain Python
numbers and turned into metric families only when scraped, like every metric of a
backend (``beephost_core.tallies``: prometheus_client is imported only then). Gauges are
computed at scrape time from the executor's state.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from beephost_core.listeners import bind_tcp
from beephost_core.tallies import CounterValue, HistogramValue, Tallies

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: Seconds from ``serve`` to the first metrics answered.
EXPOSE_DELAY = 0.5

LATENCY_BUCKETS = (
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
)  # fmt: skip


class CoreMetrics:
    """One registry per executor, so tests and embedded servers never collide."""

    def __init__(self, transport: str) -> None:
        self.tallies = Tallies()
        self.transport = transport
        self.requests = self.tallies.counter(
            "beephost_requests",
            "Requests handled, by command and outcome (ok or an error code).",
            ["transport", "command", "outcome"],
        )
        self.latency = self.tallies.histogram(
            "beephost_request_seconds",
            "Time from receiving a request to its reply, by command.",
            ["transport", "command"],
            buckets=LATENCY_BUCKETS,
        )
        self._children: dict[tuple[str, str], tuple[CounterValue, HistogramValue]] = {}
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
        # labels() checks and builds its key: cache the children per key instead.
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

    def track(
        self, sessions: Callable[[], float], handles: Callable[[], float]
    ) -> None:
        """Compute the session and handle gauges from live state when scraped."""
        self.sessions.set_function(sessions)
        self.handles.set_function(handles)
