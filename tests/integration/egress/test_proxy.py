"""The real egress proxy (mitmdump with our addon, in its own environment) between a
client and real HTTP and HTTPS servers, all on loopback, without Docker.

The fake internet: names map to 127.0.0.1 through the proxy's host map, and the
operator's internal ranges allow 127.0.0.0/8 for this test only; 127.0.0.2 stands for
the controller and 169.254.169.254 for the metadata server.
"""

import http.server
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509

from beephost_controller import egress_ca
from beephost_controller.egress_proxy_config import token_digest
from tests.certs import TestCA
from tests.proxy_wire import (
    connect_request,
    egress_counters,
    read_head,
    unix_get,
)

ROOT = Path(__file__).resolve().parents[3]
SECRET = "sk-test-0123456789abcdef-never-logged"
MARKER = "beephost-secret:weather-key"
TOKEN = "proxy-token-of-backend-one"
BACKEND = "b-one"


# -- test servers ----------------------------------------------------------------


@dataclass
class Seen:
    """What the test servers received: (server, Host, Authorization) per request."""

    requests: list[tuple[str, str, str | None]] = field(default_factory=list)


def _serve(
    seen: Seen, label: str, context: ssl.SSLContext | None
) -> tuple[http.server.ThreadingHTTPServer, int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.requests.append(
                (label, self.headers.get("Host", ""), self.headers.get("Authorization"))
            )
            body = f"hello from {label}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the proxy -------------------------------------------------------------------


@dataclass
class World:
    proxy_port: int
    metrics_port: int
    http_port: int
    https_port: int
    client_context: ssl.SSLContext
    server_ca: x509.Certificate
    seen: Seen
    output: Path

    def opener(self, token: str = TOKEN) -> urllib.request.OpenerDirector:
        proxy = f"http://{BACKEND}:{token}@127.0.0.1:{self.proxy_port}"
        return urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": proxy, "https": proxy}),
            urllib.request.HTTPSHandler(context=self.client_context),
        )

    def get(self, url: str, headers: dict[str, str] | None = None) -> str:
        request = urllib.request.Request(url, headers=headers or {})
        with self.opener().open(request, timeout=10) as reply:
            return str(reply.read().decode())

    def counters(self) -> dict[str, float]:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as reply:
            return egress_counters(reply.read().decode())

    @property
    def base(self) -> Path:
        return self.output.parent

    def tunnel(self, host: str, port: int) -> socket.socket:
        """A raw CONNECT through the proxy, its 200 read."""
        sock = socket.create_connection(("127.0.0.1", self.proxy_port), timeout=10)
        sock.sendall(connect_request(host, port, f"{BACKEND}:{TOKEN}"))
        head = read_head(sock)
        assert head.startswith(b"HTTP/1.1 200"), head
        return sock


@pytest.fixture(scope="module")
def proxy_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The proxy's own environment, built from its lock (egress-proxy/build-env)."""
    target = tmp_path_factory.mktemp("egress-proxy-env")
    subprocess.run(
        [str(ROOT / "egress-proxy" / "build-env"), str(target)],
        check=True,
        timeout=600,
        env={**os.environ, "EGRESS_PROXY_PYTHON": sys.executable},
    )
    return target


@pytest.fixture(scope="module")
def world(
    proxy_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    base = tmp_path_factory.mktemp("egress")
    seen = Seen()
    # The upstream servers' CA (the internet's), and the CA the controller makes for
    # the proxy's interception (mitmproxy reads it from its confdir).
    internet = TestCA.make("test internet CA")
    server_ca = internet.cert
    server_pem = internet.write_server(
        base, ["api.allowed.test", "other.test", "rebind.test"], stem="server"
    )
    internet.write_ca(base, "server-ca.pem")
    # The controller's own CA for the proxy's interception, in mitmproxy's confdir.
    confdir = base / "confdir"
    proxy_ca_key, proxy_ca = egress_ca.make_ca("test")
    egress_ca.write_confdir(confdir, proxy_ca_key, proxy_ca, owner=None)
    (base / "proxy-ca.pem").write_bytes(proxy_ca)

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(server_pem)
    plain, http_port = _serve(seen, "http", None)
    secure, https_port = _serve(seen, "https", server_context)

    config = {
        "backends": {
            BACKEND: {
                "token_sha256": token_digest(TOKEN),
                "allow": [
                    {
                        "host": "api.allowed.test",
                        "ports": [https_port, http_port],
                        "secret": {"secret": "weather-key"},
                    },
                    {"host": "other.test", "ports": [https_port, http_port]},
                    {"host": "rebind.test", "ports": [https_port]},
                    {"host": "metadata.test", "ports": [http_port]},
                    {"host": "controller.test", "ports": [http_port]},
                ],
            }
        },
        "secrets": {"weather-key": SECRET},
        "blocked": ["127.0.0.2/32"],
        "internal_ranges": {"test-loopback": "127.0.0.0/8"},
        "hosts": {
            "api.allowed.test": ["127.0.0.1"],
            "other.test": ["127.0.0.1"],
            "rebind.test": ["127.0.0.1", "169.254.169.254"],
            "metadata.test": ["169.254.169.254"],
            "controller.test": ["127.0.0.2"],
        },
    }
    config_path = base / "config.json"
    config_path.touch(mode=0o600)
    config_path.write_text(json.dumps(config))

    # A stale file where the metrics socket goes: the addon replaces it.
    (base / "metrics.sock").write_text("stale")
    proxy_port, metrics_port = _free_port(), _free_port()
    output = base / "proxy.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [
                str(proxy_python / "bin" / "mitmdump"),
                "--mode",
                "regular",
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                str(proxy_port),
                "-s",
                str(ROOT / "egress-proxy" / "addon.py"),
                "--set",
                f"egress_config={config_path}",
                "--set",
                f"egress_metrics=127.0.0.1:{metrics_port}",
                "--set",
                f"egress_metrics_socket={base / 'metrics.sock'}",
                "--set",
                f"confdir={confdir}",
                "--set",
                f"ssl_verify_upstream_trusted_ca={base / 'server-ca.pem'}",
                "--set",
                # The addon forces lazy connections (and no onboarding app).
                "connection_strategy=eager",
                "--set",
                "flow_detail=0",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, output.read_text()
            try:
                socket.create_connection(("127.0.0.1", proxy_port), timeout=1).close()
                socket.create_connection(("127.0.0.1", metrics_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, output.read_text()
                time.sleep(0.2)
        client_context = ssl.create_default_context(cafile=base / "server-ca.pem")
        client_context.load_verify_locations(base / "proxy-ca.pem")
        yield World(
            proxy_port,
            metrics_port,
            http_port,
            https_port,
            client_context,
            server_ca,
            seen,
            output,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        plain.shutdown()
        secure.shutdown()
        plain.server_close()
        secure.server_close()


def _refusal(world: World, url: str) -> tuple[int, str]:
    with pytest.raises(urllib.error.HTTPError) as caught:
        world.get(url)
    with caught.value:
        return caught.value.code, caught.value.read().decode()


def test_allowed_http_and_https_calls_reach_their_servers(world: World) -> None:
    before = world.counters()
    assert world.get(f"http://other.test:{world.http_port}/") == "hello from http\n"
    assert world.get(f"https://other.test:{world.https_port}/") == "hello from https\n"
    assert ("http", f"other.test:{world.http_port}", None) in world.seen.requests
    assert world.counters()["allowed"] >= before.get("allowed", 0) + 2


def test_a_host_off_the_list_is_refused_before_any_lookup(world: World) -> None:
    before = world.counters()
    code, body = _refusal(world, f"http://elsewhere.test:{world.http_port}/")
    assert code == 403
    assert "'elsewhere.test' is not on the allow-list" in body
    with pytest.raises(urllib.error.URLError, match="403"):
        world.get(f"https://elsewhere.test:{world.https_port}/")
    assert world.counters()["refused"] >= before.get("refused", 0) + 2


def test_an_allowed_host_on_another_port_is_refused(world: World) -> None:
    with pytest.raises(urllib.error.URLError, match="403"):
        world.get("https://other.test:8443/")
    code, body = _refusal(world, "http://other.test:8080/")
    assert code == 403
    assert "port 8080 is not allowed for 'other.test'" in body


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("metadata.test", "169.254.169.254 is a cloud metadata address"),
        ("controller.test", "127.0.0.2 is the controller's"),
    ],
)
def test_a_name_that_resolves_to_a_refused_address_is_refused(
    world: World, host: str, reason: str
) -> None:
    code, body = _refusal(world, f"http://{host}:{world.http_port}/")
    assert code == 403
    assert reason in body


def test_one_refused_answer_refuses_the_name(world: World) -> None:
    with pytest.raises(urllib.error.URLError, match="403"):
        world.get(f"https://rebind.test:{world.https_port}/")
    assert "rebind.test' resolves to 169.254.169.254" in world.output.read_text()


def test_a_tls_server_name_other_than_the_connect_name_is_refused(world: World) -> None:
    before = world.counters()
    sock = world.tunnel("other.test", world.https_port)
    with pytest.raises((ssl.SSLError, OSError)):
        world.client_context.wrap_socket(sock, server_hostname="api.allowed.test")
    sock.close()
    assert "is not the CONNECT name 'other.test'" in world.output.read_text()
    assert world.counters()["refused"] >= before.get("refused", 0) + 1


def test_a_tunnel_without_a_secret_stays_end_to_end_tls(world: World) -> None:
    with world.client_context.wrap_socket(
        world.tunnel("other.test", world.https_port), server_hostname="other.test"
    ) as tls:
        issuer = dict(x[0] for x in tls.getpeercert()["issuer"])  # type: ignore[index,misc]
    assert issuer["commonName"] == "test internet CA"


def test_a_secret_reaches_its_destination_only_and_no_log(world: World) -> None:
    marker = {"Authorization": MARKER}
    assert world.get(f"https://api.allowed.test:{world.https_port}/", marker)
    assert world.get(f"http://api.allowed.test:{world.http_port}/", marker)
    assert world.get(f"https://other.test:{world.https_port}/", marker)
    seen = world.seen.requests
    assert ("https", f"api.allowed.test:{world.https_port}", f"Bearer {SECRET}") in seen
    assert ("http", f"api.allowed.test:{world.http_port}", f"Bearer {SECRET}") in seen
    assert ("https", f"other.test:{world.https_port}", MARKER) in seen
    # The intercepted tunnel was answered with the controller's CA.
    with world.client_context.wrap_socket(
        world.tunnel("api.allowed.test", world.https_port),
        server_hostname="api.allowed.test",
    ) as tls:
        issuer = dict(x[0] for x in tls.getpeercert()["issuer"])  # type: ignore[index,misc]
    assert issuer["commonName"] == "beephost egress CA (test)"
    log = world.output.read_text()
    assert SECRET not in log
    assert '"decision": "allowed"' in log
    assert f'"backend": "{BACKEND}"' in log


def test_a_wrong_proxy_credential_is_refused(world: World) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        world.opener("not-the-token").open(
            f"http://other.test:{world.http_port}/", timeout=10
        )
    with caught.value:
        assert caught.value.code == 407


def test_the_addon_and_entrypoint_are_strictly_typed_against_mitmproxy(
    proxy_python: Path,
) -> None:
    # The workspace's mypy cannot see mitmproxy (it is not in the workspace lock):
    # the addon is checked here against the proxy's own environment.
    command = [
        sys.executable, "-m", "mypy", "--strict", "--no-incremental",
        "--python-executable", str(proxy_python / "bin" / "python"),
        str(ROOT / "egress-proxy" / "addon.py"),
        str(ROOT / "egress-proxy" / "serve.py"),
    ]  # fmt: skip
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mitmproxys_onboarding_page_is_not_served(world: World) -> None:
    code, body = _refusal(world, "http://mitm.it/cert/pem")
    assert code == 403
    assert "'mitm.it' is not on the allow-list" in body


def test_the_counters_are_served_on_a_unix_socket_too(world: World) -> None:
    path = world.base / "metrics.sock"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666
    status, body = unix_get(path)
    before = egress_counters(body)
    assert status == "HTTP/1.0 200 OK"
    _refusal(world, f"http://elsewhere.test:{world.http_port}/")
    after = egress_counters(unix_get(path)[1])
    assert after["refused"] >= before.get("refused", 0) + 1


def _connect(sock: socket.socket, host: str, credential: str | None) -> bytes:
    sock.sendall(connect_request(host, 443, credential))
    return read_head(sock)


def test_serve_publishes_the_proxy_on_a_unix_socket(
    world: World, proxy_python: Path, tmp_path: Path
) -> None:
    """The image's entrypoint, without the image: mitmdump on a loopback port, the
    relay on a socket (a stale one replaced), SIGTERM passed on."""
    sock_path = tmp_path / "proxy.sock"
    sock_path.write_text("stale")
    metrics = tmp_path / "metrics.sock"
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                str(proxy_python / "bin" / "python"),
                str(ROOT / "egress-proxy" / "serve.py"),
                "--socket",
                str(sock_path),
                "--config",
                str(world.base / "config.json"),
                "--confdir",
                str(world.base / "confdir"),
                "--metrics-socket",
                str(metrics),
                "--port",
                str(port),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not (sock_path.is_socket() and metrics.is_socket()):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert stat.S_IMODE(sock_path.stat().st_mode) == 0o666
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(sock_path))
            assert _connect(sock, "other.test", None).startswith(b"HTTP/1.1 407")
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(sock_path))
            head = _connect(sock, "elsewhere.test", f"{BACKEND}:{TOKEN}")
            assert head.startswith(b"HTTP/1.1 403"), head
        assert egress_counters(unix_get(metrics)[1])["refused"] >= 2
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
    # mitmdump stopped on the signal: the entrypoint exits, non-zero (the proxy is gone).
    assert code != 0
    assert "mitmdump exited" in log.read_text()


def test_serve_on_kubernetes_listens_itself_refuses_until_configured_and_its_node(
    world: World, proxy_python: Path, tmp_path: Path
) -> None:
    """The Kubernetes engine's form: no relay socket, mitmdump on the given address,
    counters over TCP, an empty configuration made where none is (every request
    refused until the controller writes one), and the node's address (``--blocked``)
    refused whatever the configuration allows."""
    config_path = tmp_path / "egress" / "config.json"
    port, metrics_port = _free_port(), _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                str(proxy_python / "bin" / "python"),
                str(ROOT / "egress-proxy" / "serve.py"),
                "--socket", "",
                "--listen-host", "127.0.0.1",
                "--port", str(port),
                "--metrics", f"127.0.0.1:{metrics_port}",
                "--config", str(config_path),
                "--confdir", str(world.base / "confdir"),
                "--blocked", "127.0.0.3",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
        assert json.loads(config_path.read_text()) == {}
        proxy = f"http://{BACKEND}:{TOKEN}@127.0.0.1:{port}"
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": proxy})
        )

        def status(url: str) -> tuple[int, str]:
            try:
                with opener.open(url, timeout=10) as reply:
                    return reply.status, reply.read().decode()
            except urllib.error.HTTPError as exc:
                with exc:
                    return exc.code, exc.read().decode()

        url = f"http://other.test:{world.http_port}/"
        assert status(url)[0] == 407  # not configured yet: no credential opens
        # The controller writes the configuration (as its exec does): used at once.
        config = json.loads((world.base / "config.json").read_text())
        config["hosts"]["node.test"] = ["127.0.0.3"]
        rules = config["backends"][BACKEND]["allow"]
        rules.append({"host": "node.test", "ports": [world.http_port]})
        staged = config_path.with_name("config.json.new")
        staged.touch(mode=0o600)
        staged.write_text(json.dumps(config))
        staged.replace(config_path)
        assert status(url) == (200, "hello from http\n")
        code, body = status(f"http://node.test:{world.http_port}/")
        assert code == 403
        assert "127.0.0.3 is the controller's or its host's" in body
        with urllib.request.urlopen(
            f"http://127.0.0.1:{metrics_port}/metrics", timeout=5
        ) as reply:
            counters = egress_counters(reply.read().decode())
        assert counters["refused"] >= 2
        assert counters["allowed"] >= 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
