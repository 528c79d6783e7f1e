"""The egress proxy: mitmproxy's ``mitmdump`` with this addon.

    mitmdump --mode regular --listen-host 0.0.0.0 --listen-port 3128 \\
        -s addon.py --set egress_config=/run/egress/config.json \\
        --set egress_metrics_socket=/run/egress-metrics/metrics.sock \\
        --set flow_detail=0 --set confdir=/run/egress/ca

(The image runs it so through ``serve.py``.) The counters are served as Prometheus
text on a TCP port (``egress_metrics``), or over HTTP on a Unix socket
(``egress_metrics_socket``: only the proxy and the controller mount its directory).

The decisions are ``beephost_controller.egress_rules``' (pure, unit-tested); this
file is only their I/O: who is asking (``egress_proxy_config.authenticate``), the
lookup of each name (once; the proxy connects to the address it checked), refusals as
HTTP answers, one log line per decision and the ``beephost_egress_total`` counter.

It runs in the proxy's own environment (``requirements.lock`` beside it: mitmproxy's
pins are older than the workspace's), so the workspace's mypy does not see it; its
logic is in the controller's typed modules.
"""

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import socketserver
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from mitmproxy import http, tls
from mitmproxy.addonmanager import Loader
from mitmproxy.connection import Client
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    generate_latest,
    start_http_server,
)

# Imported by module: a script's module-level names are mitmproxy hooks (a `load`
# here would be called as the addon's load hook).
from beephost_controller import egress_proxy_config
from beephost_controller.egress import Network
from beephost_controller.egress_proxy_config import (
    ConfigError,
    ProxyConfig,
    authenticate,
)
from beephost_controller.egress_rules import (
    Verdict,
    check_addresses,
    check_sni,
    intercepted,
    match,
    normalize_host,
    secret_header,
)
from beephost_controller.schemas.egress import EgressRule

log = logging.getLogger("beephost.egress")

DECISIONS = Counter(
    "beephost_egress", "Egress proxy decisions, by decision.", ["decision"]
)
_REALM = 'Basic realm="beephost-egress"'


class _MetricsHandler(BaseHTTPRequestHandler):
    """Any GET: the registry's Prometheus text."""

    def do_GET(self) -> None:
        body = generate_latest(REGISTRY)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return "unix"  # a Unix peer has no address (client_address is "")

    def log_message(self, format: str, *args: object) -> None:
        pass  # a scrape is not an egress decision: the log stays decisions only


class _UnixMetricsServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve_metrics_socket(path: Path) -> _UnixMetricsServer:
    """Serve the counters over HTTP on the Unix socket ``path``, in a thread.

    A stale socket is replaced. Mode 0666: the controller reading it may run as
    another user; the directory, which only the proxy and the controller mount, is
    what keeps anyone else out.
    """
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    server = _UnixMetricsServer(str(path), _MetricsHandler)
    path.chmod(0o666)
    threading.Thread(
        target=server.serve_forever, name="egress-metrics", daemon=True
    ).start()
    return server


@dataclass
class Tunnel:
    """A CONNECT allowed on one client connection, until its TLS is checked."""

    backend: str
    host: str
    port: int
    rule: EgressRule


class EgressAddon:
    def __init__(self) -> None:
        self._path: Path | None = None
        self._config = ProxyConfig()
        self._host_blocked: list[Network] = []
        self._mtime = 0.0
        self._tunnels: dict[str, Tunnel] = {}
        self._metrics_started = False
        self._metrics_socket: _UnixMetricsServer | None = None

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "egress_config", str, "", "The controller's egress configuration file."
        )
        loader.add_option(
            "egress_metrics", str, "", "HOST:PORT of the Prometheus metrics endpoint."
        )
        loader.add_option(
            "egress_blocked",
            str,
            "",
            "Addresses never reached, comma-separated, beside the configuration's "
            "(on Kubernetes: the proxy's node, which the controller cannot know).",
        )
        loader.add_option(
            "egress_metrics_socket",
            str,
            "",
            "A Unix socket serving the Prometheus metrics over HTTP.",
        )

    def configure(self, updated: set[str]) -> None:
        from mitmproxy import ctx

        # Forced, whatever the command line says: an eager strategy opens the
        # upstream connection at CONNECT, before the TLS server name is checked; the
        # onboarding app (http://mitm.it/) would answer before the allow-list.
        # (One at a time: each assignment calls configure again.)
        if ctx.options.connection_strategy != "lazy":
            ctx.options.connection_strategy = "lazy"
        if ctx.options.onboarding:
            ctx.options.onboarding = False
        if "egress_blocked" in updated:
            self._host_blocked = [
                ipaddress.ip_network(part.strip(), strict=False)
                for part in ctx.options.egress_blocked.split(",")
                if part.strip()
            ]
        if "egress_config" in updated and ctx.options.egress_config:
            self._path = Path(ctx.options.egress_config)
            self._reload(force=True)
        metrics = ctx.options.egress_metrics
        if "egress_metrics" in updated and metrics and not self._metrics_started:
            host, _, port = metrics.rpartition(":")
            start_http_server(int(port), addr=host or "127.0.0.1")
            self._metrics_started = True
        socket_path = ctx.options.egress_metrics_socket
        if (
            "egress_metrics_socket" in updated
            and socket_path
            and self._metrics_socket is None
        ):
            self._metrics_socket = serve_metrics_socket(Path(socket_path))

    def done(self) -> None:
        if self._metrics_socket is not None:
            self._metrics_socket.shutdown()
            self._metrics_socket.server_close()
            self._metrics_socket = None

    def _reload(self, force: bool = False) -> None:
        # The controller rewrites the file (atomically) as backends start and stop.
        if self._path is None:
            return
        try:
            mtime = self._path.stat().st_mtime
        except OSError:
            mtime = 0.0
        if not force and mtime == self._mtime:
            return
        try:
            self._config = egress_proxy_config.load(self._path)
        except ConfigError as exc:
            # A bad file refuses everything, never allows with a stale policy.
            log.error(json.dumps({"event": "config", "error": str(exc)}))
            self._config = ProxyConfig()
        self._mtime = mtime

    # -- decisions -----------------------------------------------------------

    def _decide(
        self, backend: str, host: str, port: int, verdict: Verdict, kind: str
    ) -> None:
        DECISIONS.labels(decision=verdict.decision).inc()
        line = {
            "event": "egress",
            "kind": kind,
            "backend": backend,
            "destination": f"{normalize_host(host)}:{port}",
            "decision": verdict.decision,
            "reason": verdict.reason,
        }
        log.info(json.dumps(line))

    async def _resolve(self, host: str, port: int) -> list[str]:
        name = normalize_host(host)
        fixed = self._config.hosts.get(name)
        if fixed is not None:
            return list(fixed)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                name, port, type=socket.SOCK_STREAM
            )
        except OSError:
            return []
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    async def _route(
        self, backend: str, allow: list[EgressRule], host: str, port: int, kind: str
    ) -> tuple[Verdict, str | None]:
        """Match, then resolve once and check every answer: the verdict, and the
        checked address to connect to."""
        verdict = match(allow, host, port)
        if not verdict.allowed:
            self._decide(backend, host, port, verdict, kind)
            return verdict, None
        addresses = await self._resolve(host, port)
        checked = check_addresses(
            host,
            addresses,
            [*self._config.blocked_networks(), *self._host_blocked],
            self._config.internal_networks(),
        )
        if not checked.allowed:
            self._decide(backend, host, port, checked, kind)
            return checked, None
        self._decide(backend, host, port, verdict, kind)
        return verdict, addresses[0]

    def _who(self, flow: http.HTTPFlow) -> tuple[str, list[EgressRule]] | None:
        self._reload()
        found = authenticate(
            self._config, flow.request.headers.get("Proxy-Authorization")
        )
        # Never forwarded: it is the sandbox's credential for this proxy only.
        flow.request.headers.pop("Proxy-Authorization", None)
        if found is None:
            DECISIONS.labels(decision="refused").inc()
            log.info(
                json.dumps(
                    {
                        "event": "egress",
                        "kind": "auth",
                        "backend": None,
                        "destination": f"{flow.request.host}:{flow.request.port}",
                        "decision": "refused",
                        "reason": "no valid proxy credential",
                    }
                )
            )
            flow.response = http.Response.make(
                407,
                b"beephost egress: no valid proxy credential\n",
                {"Proxy-Authenticate": _REALM, "Content-Type": "text/plain"},
            )
            return None
        backend_id, backend = found
        return backend_id, backend.allow

    @staticmethod
    def _refuse(flow: http.HTTPFlow, verdict: Verdict) -> None:
        flow.response = http.Response.make(
            403,
            f"beephost egress: refused: {verdict.reason}\n".encode(),
            {"Content-Type": "text/plain"},
        )

    # -- mitmproxy hooks -----------------------------------------------------

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        who = self._who(flow)
        if who is None:
            return
        backend, allow = who
        host, port = flow.request.host, flow.request.port
        verdict, address = await self._route(backend, allow, host, port, "connect")
        if address is None or verdict.rule is None:
            self._refuse(flow, verdict)
            return
        self._tunnels[flow.client_conn.id] = Tunnel(
            backend, normalize_host(host), port, verdict.rule
        )
        # The tunnel goes to the address checked, never to a second lookup.
        flow.request.data.host = address

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        tunnel = self._tunnels.get(data.context.client.id)
        if tunnel is None:
            return
        verdict = check_sni(tunnel.host, data.client_hello.sni)
        if not verdict.allowed:
            self._decide(tunnel.backend, tunnel.host, tunnel.port, verdict, "tls")
            # Passed through to no server: mitmproxy closes the client's connection.
            data.ignore_connection = True
            data.context.server.address = None
            return
        # The upstream certificate is checked against the name, not the address.
        data.context.server.sni = tunnel.host
        data.ignore_connection = not intercepted(tunnel.rule)

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        tunnel = self._tunnels.get(flow.client_conn.id)
        if tunnel is not None:
            # Inside an intercepted tunnel: already decided, bound to its address.
            rule: EgressRule | None = tunnel.rule
        else:
            who = self._who(flow)
            if who is None:
                return
            backend, allow = who
            host, port = flow.request.host, flow.request.port
            verdict, address = await self._route(backend, allow, host, port, "http")
            if address is None:
                self._refuse(flow, verdict)
                return
            rule = verdict.rule
            flow.request.data.host = address
        header = secret_header(rule, self._config.secrets)
        if header is not None:
            flow.request.headers[header[0]] = header[1]

    def client_disconnected(self, client: Client) -> None:
        self._tunnels.pop(client.id, None)


addons = [EgressAddon()]
