"""The Prometheus side of ``tallies``: imported only once metrics are read or served."""

import socket
import threading
from collections.abc import Callable, Iterator
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector


class _Collector(Collector):
    def __init__(self, families: Callable[[], Iterator[Metric]]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return self.families()

    def describe(self) -> Iterator[Metric]:
        # Nothing to check for clashes at registration: one collector per registry.
        return iter(())


def registry_of(families: Callable[[], Iterator[Metric]]) -> CollectorRegistry:
    """A registry whose every collection calls ``families`` afresh."""
    registry = CollectorRegistry()
    registry.register(_Collector(families))
    return registry


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """A scrape every few seconds is no news: log nothing."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape never holds the process up at exit


def serve_on(sock: socket.socket, registry: CollectorRegistry) -> None:
    """Answer Prometheus scrapes of ``registry`` on the listening ``sock``, from a
    daemon thread (prometheus_client's ``start_http_server``, on a socket bound
    beforehand)."""
    server = _Server(sock.getsockname()[:2], _QuietHandler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    host, port = sock.getsockname()[:2]
    # What HTTPServer.server_bind would set, without its reverse DNS lookup.
    server.server_name, server.server_port = host, port
    server.setup_environ()
    server.set_app(make_wsgi_app(registry))
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
