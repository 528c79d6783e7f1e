"""DockerEgress's pure parts, with the in-memory containers and builder: the
configuration it writes (0600, live backends only, secrets' values at each write,
the blocked gateways), the proxy's container, its log's refusals and its counters."""

import http.server
import json
import shutil
import socketserver
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from beephost_controller.egress_proxy_config import load
from beephost_controller.egress_registry import parse_counts, parse_refusals
from beephost_controller.engine.docker_containers import network_gateways
from beephost_controller.engine.docker_egress import LABEL_EGRESS_IMAGE, DockerEgress
from beephost_controller.ports import EgressRefusal
from beephost_controller.rows import BackendConfig, BackendRow
from beephost_controller.schemas import BackendLimits, BackendOptions
from beephost_controller.schemas.egress import EgressRule, SecretHeader
from beephost_controller.secret_store import SecretStore
from beephost_controller.settings import Settings
from beephost_controller.testing import MemoryContainers, MemoryImageBuilder

DIGEST = "a" * 64
ALLOW = [EgressRule(host="api.allowed.test", ports=[443])]
WITH_SECRET = [
    EgressRule(host="api.allowed.test", secret=SecretHeader(secret="weather-key"))
]


@pytest.fixture
def root() -> Iterator[Path]:
    # Short: a Unix socket's path is at most 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="bh-eg-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def containers() -> Iterator[MemoryContainers]:
    """Memory containers (a started egress proxy makes its socket), closed after."""
    made = MemoryContainers()
    yield made
    made.close()


def _egress(
    root: Path, containers: MemoryContainers | None = None, **settings: object
) -> DockerEgress:
    config = Settings(
        socket_root=root,
        database=root / "db.sqlite",
        **settings,  # type: ignore[arg-type]
    )
    store = SecretStore(root / "secrets")
    return DockerEgress(
        config,
        containers or MemoryContainers(),
        MemoryImageBuilder(),
        store,
        euid=1000,
        egid=1000,
        addresses=lambda: ["172.18.0.9"],
        socket_wait=0.5,
    )


def test_register_writes_a_config_only_the_proxy_reads(root: Path) -> None:
    egress = _egress(root)
    egress.register("b-1", DIGEST, ALLOW)
    path = egress.paths.config
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = load(path)  # the proxy's own check: it refuses any other mode
    assert config.backends["b-1"].token_sha256 == DIGEST
    assert config.backends["b-1"].allow == ALLOW
    egress.unregister("b-1")
    assert load(path).backends == {}


def test_the_config_holds_the_named_secrets_values_read_at_each_write(
    root: Path,
) -> None:
    egress = _egress(root)
    egress.secrets.put("weather-key", "v1")
    egress.secrets.put("unnamed", "never")
    egress.register("b-1", DIGEST, WITH_SECRET)
    assert load(egress.paths.config).secrets == {"weather-key": "v1"}
    egress.secrets.put("weather-key", "v2")
    egress.register("b-2", DIGEST, ALLOW)
    assert load(egress.paths.config).secrets == {"weather-key": "v2"}


def test_a_rule_whose_secret_is_gone_is_left_out_never_sent_bare(root: Path) -> None:
    egress = _egress(root)
    egress.register("b-1", DIGEST, [*WITH_SECRET, *ALLOW])
    config = load(egress.paths.config)
    assert config.backends["b-1"].allow == ALLOW
    assert config.secrets == {}


def test_the_blocked_addresses_are_the_gateways_and_the_controllers(
    root: Path,
) -> None:
    containers = MemoryContainers()
    containers.gateways["egress-net"] = ["172.30.0.1", "fd00:30::1"]
    egress = _egress(root, containers, egress_proxy_network="egress-net")
    assert egress.blocked() == ["172.30.0.1/32", "fd00:30::1/128", "172.18.0.9/32"]


def test_the_operators_ranges_and_hosts_reach_the_proxy(root: Path) -> None:
    egress = _egress(
        root,
        egress_internal_ranges={"data": "10.1.2.0/24"},
        egress_hosts={"API.Allowed.Test": "203.0.113.7"},
    )
    config = egress.config()
    assert config.internal_ranges == {"data": "10.1.2.0/24"}
    assert config.hosts == {"api.allowed.test": ["203.0.113.7"]}


def test_a_gateway_is_the_subnets_first_address_when_the_network_names_none() -> None:
    attrs = {
        "IPAM": {
            "Config": [
                {"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"},
                {"Subnet": "10.99.0.0/24"},
                {"Subnet": "fd00:99::/64", "Gateway": ""},
            ]
        }
    }
    assert network_gateways(attrs) == ["172.17.0.1", "10.99.0.1", "fd00:99::1"]
    assert network_gateways({"IPAM": {"Config": None}}) == []


def test_rebuild_keeps_the_live_allow_list_backends_only(root: Path) -> None:
    egress = _egress(root)
    egress.register("b-gone", DIGEST, ALLOW)
    config = BackendConfig(
        None,
        "127.0.0.1",
        BackendLimits(),
        BackendOptions(network=False),
        egress_allow=tuple(ALLOW),
        egress_token_sha256="b" * 64,
    )
    live = BackendRow("b-live", "e", "http", "ready", "c1", "t", config)
    plain = BackendConfig(None, "127.0.0.1", BackendLimits(), BackendOptions())
    closed = BackendRow("b-closed", "e", "http", "ready", "c2", "t", plain)
    egress.rebuild([live, closed])
    assert set(load(egress.paths.config).backends) == {"b-live"}
    assert egress.registered == {"b-live"}


def test_ensure_runs_a_hardened_labelled_proxy_once(
    root: Path, containers: MemoryContainers
) -> None:
    egress = _egress(root, containers)
    egress.ensure()
    spec = containers.specs[egress.name]
    assert spec.labels[LABEL_EGRESS_IMAGE] == "beephost/egress-proxy:memory"
    assert spec.labels["io.beephost.managed"] == "true"
    assert spec.network == "bridge"
    assert spec.read_only
    assert spec.no_new_privileges
    assert not spec.cap_add
    assert spec.memory_mb == 512
    assert spec.user == "1000:1000"
    mounts = dict(spec.egress.values())
    assert mounts == {
        "/run/egress": "ro",
        "/run/egress-socket": "rw",
        "/run/egress-metrics": "rw",
    }
    assert (egress.paths.ca / "mitmproxy-ca.pem").is_file()
    assert egress.paths.bundle.read_bytes().endswith(
        (egress.paths.ca / "mitmproxy-ca-cert.pem").read_bytes()
    )
    egress.ensure()  # running, current, answering: nothing to do
    assert containers.starts == [egress.name]


def test_a_proxy_of_an_older_image_is_replaced(
    root: Path, containers: MemoryContainers
) -> None:
    egress = _egress(root, containers)
    egress.ensure()
    first = containers.containers[egress.name].id
    assert isinstance(egress.images, MemoryImageBuilder)
    # The image is asked for once per process: a new one comes with a new controller.
    egress.images.egress_proxy_tag = "beephost/egress-proxy:newer"
    egress.ensure()
    assert containers.containers[egress.name].id == first
    restarted = _egress(root, containers)
    assert isinstance(restarted.images, MemoryImageBuilder)
    restarted.images.egress_proxy_tag = "beephost/egress-proxy:newer"
    restarted.ensure()
    assert containers.containers[egress.name].id != first
    assert containers.specs[egress.name].image == "beephost/egress-proxy:newer"


def test_a_proxy_without_a_socket_is_unavailable(root: Path) -> None:
    from beephost_protocol.errors import Unavailable

    class Silent(MemoryContainers):
        def _serve_egress(self, spec: object) -> None:
            return None  # a proxy that never comes up

    egress = _egress(root, Silent())
    with pytest.raises(Unavailable, match="egress proxy made no socket"):
        egress.ensure()


LOG = "\n".join(
    [
        "2026-11-26T10:00:00.123456789Z Loading script addon.py",
        "2026-11-26T10:00:01.5Z "
        + json.dumps(
            {
                "event": "egress",
                "kind": "connect",
                "backend": "b-1",
                "destination": "other.test:443",
                "decision": "refused",
                "reason": "other.test is not in the allow-list",
            }
        ),
        "2026-11-26T10:00:02Z [10:00:02.000] "
        + json.dumps(
            {
                "event": "egress",
                "kind": "http",
                "backend": "b-1",
                "destination": "api.allowed.test:80",
                "decision": "allowed",
                "reason": "",
            }
        ),
        "2026-11-26T10:00:03Z "
        + json.dumps(
            {
                "event": "egress",
                "kind": "connect",
                "backend": "b-2",
                "destination": "x.test:443",
                "decision": "refused",
                "reason": "r",
            }
        ),
        "not json {",
    ]
)


def test_the_refusals_are_a_backends_own_from_the_proxys_log() -> None:
    assert parse_refusals(LOG, "b-1") == [
        EgressRefusal(
            at=1795687201.5,
            kind="connect",
            destination="other.test:443",
            reason="other.test is not in the allow-list",
        )
    ]
    assert [r.destination for r in parse_refusals(LOG, "b-2")] == ["x.test:443"]
    assert parse_refusals(LOG, "b-1", limit=0) == []


def test_the_counts_are_read_from_prometheus_text() -> None:
    text = (
        "# HELP beephost_egress_total Egress proxy decisions, by decision.\n"
        "# TYPE beephost_egress_total counter\n"
        'beephost_egress_total{decision="allowed"} 3.0\n'
        'beephost_egress_total{decision="refused"} 2.0\n'
        'beephost_egress_created{decision="allowed"} 1.7e9\n'
    )
    assert parse_counts(text) == {"allowed": 3, "refused": 2}


def test_the_counts_are_read_over_http_on_the_metrics_socket(root: Path) -> None:
    body = b'beephost_egress_total{decision="refused"} 4.0\n'

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def address_string(self) -> str:
            return "unix"

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    egress = _egress(root)
    assert egress.counts() == {}  # no proxy yet
    egress.paths.metrics_dir.mkdir(parents=True)
    server = Server(str(egress.paths.metrics_socket), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert egress.counts() == {"refused": 4}
    finally:
        server.shutdown()
        server.server_close()


def test_a_start_whose_proxy_cannot_be_made_fails_typed_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    from dataclasses import replace as with_fields

    from beephost_controller.images.errors import BackendImageError
    from beephost_controller.starts import BackendRequest
    from beephost_protocol.errors import Unavailable
    from tests.unit.controller.support import (
        backend_service,
        docker_engine,
        ready_environment,
    )

    class Failing(MemoryImageBuilder):
        def ensure_egress_proxy(self, log: Callable[[str], None]) -> str:
            raise BackendImageError("cannot read egress-proxy/requirements.lock")

    env = with_fields(ready_environment("e"), egress_allow=tuple(ALLOW))
    service = backend_service(tmp_path, environments=[env])
    egress = docker_engine(service).egress
    egress.images = Failing()
    with pytest.raises(Unavailable, match="egress proxy could not be started"):
        service.start(BackendRequest("e", "pipe"))
    assert service.store.backends() == []
    assert egress.registered == frozenset()


def test_a_restarted_controller_rebuilds_the_config_from_the_live_rows(
    tmp_path: Path,
) -> None:
    from dataclasses import replace as with_fields

    from beephost_controller.engine.docker_backends import DockerBackends
    from beephost_controller.starts import BackendRequest
    from tests.unit.controller.support import (
        backend_service,
        docker_engine,
        memory_containers,
        ready_environment,
    )

    env = with_fields(ready_environment("e"), egress_allow=tuple(ALLOW))
    service = backend_service(tmp_path, environments=[env])
    docker_engine(service).egress.images = MemoryImageBuilder()
    containers = memory_containers(service)
    try:
        row = service.start(BackendRequest("e", "pipe"))
        plain = service.start(
            BackendRequest("e", "pipe", options=BackendOptions(network=False))
        )
        # A new process: nothing registered in memory until reconciliation.
        restarted = DockerBackends(
            service.settings,
            containers,
            spawn=lambda work: work(),
            images=MemoryImageBuilder(),
        )
        assert restarted.egress.registered == frozenset()
        restarted.tidy(service.store.backends(), [])
        assert restarted.egress.registered == {row.id}
        config = load(restarted.egress.paths.config)
        assert set(config.backends) == {row.id}
        assert plain.id not in config.backends
        assert restarted.egress.name in containers.containers
    finally:
        containers.close()
