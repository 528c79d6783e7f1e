"""``DockerEgress``: the controller's one egress proxy on Docker, and its configuration.

A backend whose egress policy is an allow-list runs with no network interface at all;
its only way out is the proxy's Unix socket, whose directory is mounted read-only into
it (``sandbox_env.EGRESS_SOCKET_DIR``); its server relays ``127.0.0.1:3128`` there.
The proxy (one per controller, ``beephost-<NAME>-egress``, from the image
``ImageBuilder.ensure_egress_proxy`` makes) sits on ``EGRESS_PROXY_NETWORK``, which no
sandbox joins, and decides each request by the policy of the backend whose credential
it carries (``egress_proxy_config``). Everything it needs is in host directories
under ``<SOCKET_ROOT>/egress/`` (``EgressPaths``):

- ``state/`` → ``/run/egress`` (read-only): ``config.json`` (0600, the proxy's user:
  it holds the secrets' values), ``ca/`` (mitmproxy's confdir, ``egress_ca``) and,
  with ``EGRESS_UPSTREAM_CA_BUNDLE``, ``upstream-ca.pem`` (what the proxy trusts for
  the destinations' TLS instead of the public CAs);
- ``socket/`` → ``/run/egress-socket``: ``proxy.sock`` (0666), mounted read-only into
  the sandboxes;
- ``metrics/`` → ``/run/egress-metrics``: ``metrics.sock``, the proxy's counters as
  Prometheus text, read by the controller only;
- ``trust/``: the sandboxes' CA bundle (public CAs + the proxy's CA), read-only.

The configuration is rewritten whole (atomically) at each register, unregister and
rebuild, from the live backends and the secret store's values at that moment.
"""

import contextlib
import hashlib
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from beephost_controller import egress_ca
from beephost_controller.egress_proxy_config import ProxyConfig
from beephost_controller.egress_registry import (
    EgressRegistry,
    parse_counts,
    parse_refusals,
)
from beephost_controller.engine.sandbox_env import (
    EGRESS_SOCKET_DIR,
    EGRESS_TRUST_DIR,
    selector,
)
from beephost_controller.images.egress_proxy import PROXY_COMMAND
from beephost_controller.ports import (
    BackendContainers,
    ContainerEngineError,
    ContainerGone,
    EgressRefusal,
    ImageBuilder,
)
from beephost_controller.rows import BackendRow
from beephost_controller.schemas.egress import EgressRule
from beephost_controller.secret_store import SecretStore
from beephost_controller.settings import Settings
from beephost_controller.specs import ContainerSpec
from beephost_protocol.errors import Unavailable

logger = logging.getLogger(__name__)

#: On the proxy's container: the image it runs (a newer one replaces it).
LABEL_EGRESS_IMAGE = "io.beephost.egress.image"
#: On the proxy's container: the SHA-256 of the upstream CA bundle it trusts ("" for
#: the public CAs); another replaces it.
LABEL_EGRESS_UPSTREAM = "io.beephost.egress.upstream-ca"
#: On the proxy's container: the controller whose proxy it is.
LABEL_EGRESS_PROXY = "io.beephost.egress.proxy"
#: The proxy's user when the controller is root (the state is given to it); else the
#: controller's own uid and gid, so that it reads what the controller writes.
PROXY_USER = (10002, 10002)
#: Seconds a new proxy has to make its socket.
SOCKET_WAIT = 60.0
#: Proxy log lines read for a backend's refusals.
LOG_TAIL = 5000
#: Where the proxy's directories are mounted in its own container.
PROXY_STATE = "/run/egress"
PROXY_SOCKET_DIR = "/run/egress-socket"
PROXY_METRICS_DIR = "/run/egress-metrics"


@dataclass(frozen=True)
class EgressPaths:
    """The proxy's host directories and files, under ``<SOCKET_ROOT>/egress``."""

    root: Path

    @classmethod
    def of(cls, settings: Settings) -> "EgressPaths":
        return cls(settings.socket_root / "egress")

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def config(self) -> Path:
        return self.state / "config.json"

    @property
    def ca(self) -> Path:
        return self.state / "ca"

    @property
    def upstream_ca(self) -> Path:
        return self.state / "upstream-ca.pem"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def socket(self) -> Path:
        return self.socket_dir / "proxy.sock"

    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    @property
    def metrics_socket(self) -> Path:
        return self.metrics_dir / "metrics.sock"

    @property
    def trust_dir(self) -> Path:
        return self.root / "trust"

    @property
    def bundle(self) -> Path:
        return self.trust_dir / "ca-bundle.pem"

    def sandbox_mounts(self) -> dict[Path, tuple[str, str]]:
        """What an allow-list sandbox mounts: the socket and the trust bundle, both
        read-only."""
        return {
            self.socket_dir: (EGRESS_SOCKET_DIR, "ro"),
            self.trust_dir: (EGRESS_TRUST_DIR, "ro"),
        }

    def proxy_mounts(self) -> dict[Path, tuple[str, str]]:
        return {
            self.state: (PROXY_STATE, "ro"),
            self.socket_dir: (PROXY_SOCKET_DIR, "rw"),
            self.metrics_dir: (PROXY_METRICS_DIR, "rw"),
        }


def proxy_name(settings: Settings) -> str:
    return f"beephost-{settings.name}-egress"


def own_addresses() -> list[str]:
    """The controller's own addresses (not loopback: every policy refuses it)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        return []
    found = []
    for info in infos:
        address = str(info[4][0]).split("%")[0]
        with contextlib.suppress(ValueError):
            if not ipaddress.ip_address(address).is_loopback:
                found.append(address)
    return list(dict.fromkeys(found))


class DockerEgress:
    """The controller's egress proxy: made on demand, configured from live backends.

    Args:
        images: Makes the proxy's image (``ensure_egress_proxy``); None: no allow-list
            start can be served (Unavailable).
        secrets: The secret store the configuration's values are read from.
        euid, egid: The controller's (who owns the state: see ``PROXY_USER``).
        addresses: The controller's own addresses (blocked to the proxy).
        socket_wait: Seconds a new proxy has to make its socket.
    """

    def __init__(
        self,
        settings: Settings,
        containers: BackendContainers,
        images: ImageBuilder | None,
        secrets: SecretStore,
        *,
        extra_labels: Mapping[str, str] | None = None,
        euid: int | None = None,
        egid: int | None = None,
        addresses: Callable[[], list[str]] = own_addresses,
        socket_wait: float = SOCKET_WAIT,
    ) -> None:
        self.settings = settings
        self.containers = containers
        self.images = images
        self.secrets = secrets
        self.paths = EgressPaths.of(settings)
        self.name = proxy_name(settings)
        self.labels = {
            **(extra_labels or {}),
            **selector(settings),
            LABEL_EGRESS_PROXY: settings.name,
        }
        self.euid = os.geteuid() if euid is None else euid
        self.egid = os.getegid() if egid is None else egid
        self.addresses = addresses
        self.socket_wait = socket_wait
        self.registry = EgressRegistry(
            settings, secrets, blocked=self.blocked, publish=self._write_config
        )
        self._lock = self.registry.lock
        self._ca: bytes | None = None
        #: The proxy's image, once made (``ensure``).
        self._tag: str | None = None

    @property
    def owner(self) -> tuple[int, int]:
        """Who the proxy runs as, and owns its state."""
        return PROXY_USER if self.euid == 0 else (self.euid, self.egid)

    def _chown(self, path: Path) -> None:
        if self.euid == 0:
            os.chown(path, *self.owner)

    # -- the proxy ---------------------------------------------------------------------

    def prepare(self) -> None:
        """The state directories, the CA (made once) and the sandboxes' bundle."""
        paths = self.paths
        paths.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        for directory, mode in (
            (paths.state, 0o700),
            (paths.socket_dir, 0o755),
            (paths.metrics_dir, 0o700),
        ):
            directory.mkdir(mode=mode, exist_ok=True)
            os.chmod(directory, mode)
            self._chown(directory)
        owner = self.owner if self.euid == 0 else None
        self._ca = egress_ca.ensure_ca(paths.ca, self.settings.name, owner)
        egress_ca.write_bundle(paths.bundle, self._ca, self.settings.ca_bundle)
        upstream = self.settings.egress_upstream_ca_bundle
        if upstream is None:
            paths.upstream_ca.unlink(missing_ok=True)
        else:
            paths.upstream_ca.write_bytes(upstream.read_bytes())
            os.chmod(paths.upstream_ca, 0o644)  # certificates only: nothing secret
            self._chown(paths.upstream_ca)

    def _upstream_digest(self) -> str:
        """The SHA-256 of the upstream CA bundle the proxy is to trust ("": none)."""
        path = self.paths.upstream_ca
        if self.settings.egress_upstream_ca_bundle is None or not path.exists():
            return ""
        return hashlib.sha256(path.read_bytes()).hexdigest()

    def ensure(self, log: Callable[[str], None] = logger.info) -> None:
        """The proxy runs, from the current image, with its socket made.

        Raises:
            Unavailable: No image builder, or the proxy did not come up.
            ContainerEngineError: The engine failed.
        """
        if self.images is None:
            raise Unavailable(
                "egress allow-lists need the egress proxy, and this controller "
                "builds no images (no container engine)",
                {"egress": "allow_list"},
            )
        with self._lock:
            self.prepare()
            # Content-addressed by code that does not change while this process
            # runs: asked once (each ask hashes the proxy's sources), again after a
            # failure (the image may have been removed).
            tag = self._tag or self.images.ensure_egress_proxy(log)
            self._tag = None
            state = self.containers.container_state(self.name)
            current = (
                state is not None
                and state.status == "running"
                and state.labels.get(LABEL_EGRESS_IMAGE) == tag
                and state.labels.get(LABEL_EGRESS_UPSTREAM, "")
                == self._upstream_digest()
            )
            if current and self._socket_answers():
                self._tag = tag
                return
            if state is not None:
                logger.info("replacing the egress proxy %s", self.name)
                self.containers.remove_container(self.name)
            self._write_config()
            with contextlib.suppress(FileNotFoundError):
                self.paths.socket.unlink()  # a dead proxy's: the new one makes its own
            container = self.containers.create_container(self._spec(tag))
            self.containers.start_container(container)
            self._wait_for_socket()
            self._tag = tag

    def _spec(self, tag: str) -> ContainerSpec:
        uid, gid = self.owner
        upstream = self._upstream_digest()
        # The image's command (egress-proxy/serve.py), with mitmdump's option for an
        # upstream CA bundle after its `--` when there is one.
        command: tuple[str, ...] = ()
        if upstream:
            trusted = f"{PROXY_STATE}/{self.paths.upstream_ca.name}"
            command = (
                *PROXY_COMMAND,
                "--",
                "--set",
                f"ssl_verify_upstream_trusted_ca={trusted}",
            )
        return ContainerSpec(
            name=self.name,
            image=tag,
            command=command,
            labels={
                **self.labels,
                LABEL_EGRESS_IMAGE: tag,
                LABEL_EGRESS_UPSTREAM: upstream,
            },
            environment={},
            healthcheck=(),
            memory_mb=512,
            cpus=1.0,
            pids=256,
            read_only=True,
            tmpfs_mb=64,
            user=f"{uid}:{gid}",
            no_new_privileges=True,
            restart_retries=100,
            network=self.settings.egress_proxy_network,
            egress=self.paths.proxy_mounts(),
        )

    def _socket_answers(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(str(self.paths.socket))
            except OSError:
                return False
        return True

    def _wait_for_socket(self) -> None:
        deadline = time.monotonic() + self.socket_wait
        while not self._socket_answers():
            if time.monotonic() >= deadline:
                tail = ""
                with contextlib.suppress(ContainerEngineError):
                    tail = self.containers.container_logs(self.name, 20)
                raise Unavailable(
                    f"the egress proxy made no socket within {self.socket_wait:.0f} s"
                    + (f"; its last output:\n{tail}" if tail else ""),
                    {"egress": "allow_list"},
                )
            time.sleep(0.1)

    def remove(self) -> None:
        """Remove the proxy's container (its state stays: the CA is kept)."""
        self.containers.remove_container(self.name)

    # -- its configuration -------------------------------------------------------------

    def register(
        self, backend_id: str, token_sha256: str, allow: Iterable[EgressRule]
    ) -> None:
        self.registry.register(backend_id, token_sha256, allow)

    def unregister(self, backend_id: str) -> None:
        self.registry.unregister(backend_id)

    def rebuild(self, rows: Iterable[BackendRow]) -> None:
        """The configuration from the live backends' rows (after a restart of the
        controller)."""
        with self._lock:
            self.registry.rebuild(rows)
            if self.registry.registered or self.paths.config.exists():
                self._write_config()

    @property
    def registered(self) -> frozenset[str]:
        return self.registry.registered

    def config(self) -> ProxyConfig:
        return self.registry.config()

    def _write_config(self, config: ProxyConfig | None = None) -> None:
        data = (config or self.config()).model_dump_json().encode()
        path = self.paths.config
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(".config.json.new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.chmod(temporary, 0o600)
            self._chown(temporary)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def blocked(self) -> list[str]:
        """Addresses the proxy never connects to, whatever a policy says: the
        gateways of its network (the host's services) and the controller's own."""
        gateways: list[str] = []
        try:
            gateways = self.containers.network_gateways(
                self.settings.egress_proxy_network
            )
        except ContainerEngineError as exc:
            logger.warning("egress: the proxy network's gateways are unknown: %s", exc)
        found = [*gateways, *self.addresses()]
        networks = []
        for address in dict.fromkeys(found):
            with contextlib.suppress(ValueError):
                networks.append(str(ipaddress.ip_network(address, strict=False)))
        return networks

    # -- its audit ---------------------------------------------------------------------

    def refusals(self, backend_id: str, limit: int = 10) -> list[EgressRefusal]:
        """The last ``limit`` refusals of ``backend_id``, from the proxy's log."""
        try:
            log = self.containers.container_logs(self.name, LOG_TAIL, timestamps=True)
        except ContainerGone:
            return []
        return parse_refusals(log, backend_id, limit)

    def counts(self) -> dict[str, int]:
        """The proxy's decisions so far, by decision (empty: no proxy)."""
        path = self.paths.metrics_socket
        if not path.exists():
            return {}
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.settimeout(2.0)
                client.connect(str(path))
                client.sendall(b"GET /metrics HTTP/1.0\r\nHost: egress\r\n\r\n")
                chunks = []
                while chunk := client.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            logger.info("egress: no metrics from the proxy: %s", exc)
            return {}
        text = b"".join(chunks).decode(errors="replace")
        if text.startswith("HTTP/"):
            text = text.partition("\r\n\r\n")[2]
        return parse_counts(text)
