"""``KubeEgress``: the controller's egress proxy on Kubernetes, and its configuration.

The proxy's objects are ``kube_egress_manifests``'; this module makes them on demand
(the first allow-list start), replaces the Deployment when its image or upstream
bundle changes, and delivers the configuration (``EgressRegistry``'s) into each
ready proxy pod through the API server's exec, on stdin: the secrets' values never
appear in a pod's spec, an object the sandboxes could read, or a process listing.
A write is acknowledged (the exec's exit), so a backend's start goes on only once the
proxy knows its credential. A proxy pod that Kubernetes starts again has no
configuration (it refuses everything) until ``sync`` writes it: the engine calls it
as it watches its allow-list backends (at most every ``SYNC_INTERVAL`` seconds).

Audit: the proxy pods' logs (``pods/log``, with the kubelet's timestamps) and their
counters, read through the API server's proxy (``pods/proxy``).
"""

import base64
import binascii
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from beephost_controller import egress_ca
from beephost_controller.egress_proxy_config import ProxyConfig
from beephost_controller.egress_registry import (
    EgressRegistry,
    parse_counts,
    parse_refusals,
)
from beephost_controller.engine import kube_egress_manifests as kem
from beephost_controller.engine.docker_egress import (
    LABEL_EGRESS_PROXY,
    LOG_TAIL,
    own_addresses,
    proxy_name,
)
from beephost_controller.engine.kube_status import stuck
from beephost_controller.engine.sandbox_env import selector
from beephost_controller.images.egress_proxy import PROXY_COMMAND
from beephost_controller.kube_settings import KubernetesSettings
from beephost_controller.ports import (
    ContainerEngineError,
    ContainerGone,
    EgressRefusal,
    ImageBuilder,
)
from beephost_controller.rows import BackendRow
from beephost_controller.secret_store import SecretStore
from beephost_controller.settings import Settings
from beephost_protocol.errors import Unavailable

logger = logging.getLogger(__name__)

#: Seconds a new proxy has to have a ready pod.
READY_WAIT = 180.0
#: Seconds an exec that writes the configuration may take.
WRITE_TIMEOUT = 30.0
#: Seconds between two looks for proxy pods that lack the configuration.
SYNC_INTERVAL = 5.0

#: Run in a proxy pod by its own Python: reads exactly N bytes from stdin (the 1.20
#: exec protocol cannot close stdin) and replaces the file atomically, 0600.
WRITE_SCRIPT = """
import os, sys
path, size = sys.argv[1], int(sys.argv[2])
data = sys.stdin.buffer.read(size)
if len(data) != size:
    sys.exit(f"got {len(data)} of {size} bytes")
os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
temporary = path + ".new"
fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "wb") as file:
    file.write(data)
os.chmod(temporary, 0o600)
os.replace(temporary, path)
"""


class ProxyApi(Protocol):
    """The ``KubeApi`` calls the proxy needs."""

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]: ...
    def get(self, kind: str, name: str) -> dict[str, Any] | None: ...
    def list(self, kind: str, labels: Mapping[str, str]) -> list[dict[str, Any]]: ...
    def delete(
        self, kind: str, name: str, *, grace_seconds: int | None = None
    ) -> None: ...
    def exec_in(
        self,
        pod: str,
        container: str,
        command: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float,
    ) -> tuple[int, str]: ...
    def logs(
        self, pod: str, container: str, tail: int, *, timestamps: bool = False
    ) -> str: ...
    def pod_get(self, pod: str, port: int, path: str) -> str: ...


class KubeEgress:
    """The egress proxy of one controller, in the sandbox namespace.

    Args:
        images: Makes the proxy's image (None: no allow-list start can be served).
        publish: Pushes a local image to the registry: its pull reference.
        secrets: The secret store the configuration's values are read from.
        addresses: The controller's own addresses (blocked to the proxy).
    """

    def __init__(
        self,
        settings: Settings,
        kube: KubernetesSettings,
        api: ProxyApi,
        images: ImageBuilder | None,
        publish: Callable[[str], str],
        secrets: SecretStore,
        *,
        extra_labels: Mapping[str, str] | None = None,
        addresses: Callable[[], list[str]] = own_addresses,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.api = api
        self.images = images
        self.publish = publish
        self.addresses = addresses
        self.clock = clock
        self.name = proxy_name(settings)
        self.labels = {
            **(extra_labels or {}),
            **selector(settings),
            LABEL_EGRESS_PROXY: settings.name,
        }
        self.registry = EgressRegistry(
            settings, secrets, blocked=self.blocked, publish=self._deliver
        )
        self._lock = self.registry.lock
        #: The configuration as delivered, and its generation.
        self._data = ProxyConfig().model_dump_json().encode()
        self._generation = 0
        #: proxy pod uid -> the generation it holds.
        self._delivered: dict[str, int] = {}
        self._address: str | None = None
        self._ready = False
        self._synced_at = float("-inf")

    # -- the proxy ---------------------------------------------------------------------

    def address(self) -> str:
        """The proxy Service's ClusterIP (the Service made if missing)."""
        with self._lock:
            if self._address is None:
                service = self.api.get("Service", self.name) or self.api.create(
                    kem.service(self._plan(image="", version=""))
                )
                self._address = str(service["spec"]["clusterIP"])
            return self._address

    def ensure(self, log: Callable[[str], None] = logger.info) -> None:
        """The proxy runs the current image with a ready pod holding the current
        configuration.

        Raises:
            Unavailable: No image builder, or no proxy pod became ready.
            ContainerEngineError: The API server failed.
        """
        if self.images is None:
            raise Unavailable(
                "egress allow-lists need the egress proxy, and this controller "
                "builds no images (no container engine)",
                {"egress": "allow_list"},
            )
        with self._lock:
            if self._ready:
                return
            tag = self.images.ensure_egress_proxy(log)
            image = self.publish(tag)
            upstream = self._upstream()
            version = hashlib.sha256(
                f"{image}\n{hashlib.sha256(upstream or b'').hexdigest()}".encode()
            ).hexdigest()[:16]
            plan = self._plan(image, version, upstream=upstream is not None)
            cert = self._ensure_ca(plan)
            self._ensure_trust(plan, cert, upstream)
            self.address()
            if self.api.get("NetworkPolicy", self.name) is None:
                self.api.create(kem.network_policy(plan, selector(self.settings)))
            current = self.api.get("Deployment", self.name)
            annotations = (current or {}).get("metadata", {}).get("annotations") or {}
            if (
                current is not None
                and annotations.get(kem.ANNOTATION_VERSION) != version
            ):
                logger.info("replacing the egress proxy %s", self.name)
                self.api.delete("Deployment", self.name)
                self._wait_gone()
                current = None
            if current is None:
                self.api.create(kem.deployment(plan))
            self._stage(self.registry.config())
            self._wait_ready()
            self._ready = True

    def _plan(
        self, image: str, version: str, *, upstream: bool = False
    ) -> kem.ProxyPlan:
        return kem.ProxyPlan(
            name=self.name,
            namespace=self.kube.namespace,
            labels=self.labels,
            image=image,
            version=version,
            upstream_ca=upstream,
        )

    def _upstream(self) -> bytes | None:
        path = self.settings.egress_upstream_ca_bundle
        return None if path is None else path.read_bytes()

    def _ensure_ca(self, plan: kem.ProxyPlan) -> bytes:
        """The CA's certificate: the Secret's, or a new one (made once: sandboxes
        started with the old one trust it until they stop)."""
        secret = self.api.get("Secret", plan.ca_secret)
        if secret is not None:
            cert = _decoded(secret, egress_ca.CA_CERT_FILE)
            if cert is not None and egress_ca.usable(cert):
                return cert
            self.api.delete("Secret", plan.ca_secret)
        key_pem, cert = egress_ca.make_ca(self.settings.name)
        self.api.create(kem.ca_secret(plan, egress_ca.confdir_files(key_pem, cert)))
        return cert

    def _ensure_trust(
        self, plan: kem.ProxyPlan, cert: bytes, upstream: bytes | None
    ) -> None:
        wanted = kem.trust_config_map(
            plan, egress_ca.sandbox_bundle(cert, self.settings.ca_bundle), upstream
        )
        current = self.api.get("ConfigMap", plan.trust_config_map)
        if current is not None and current.get("data") == wanted["data"]:
            return
        if current is not None:
            self.api.delete("ConfigMap", plan.trust_config_map)
        self.api.create(wanted)

    def _pods(self) -> list[dict[str, Any]]:
        return [
            pod
            for pod in self.api.list("Pod", self.labels)
            if not pod["metadata"].get("deletionTimestamp")
        ]

    def _ready_pods(self) -> list[dict[str, Any]]:
        return [pod for pod in self._pods() if _is_ready(pod)]

    def _wait_ready(self) -> None:
        deadline = self.clock() + READY_WAIT
        while True:
            ready = self._ready_pods()
            if ready:
                self._deliver_to(ready)
                return
            if self.clock() >= deadline:
                raise Unavailable(
                    f"the egress proxy had no ready pod within {READY_WAIT:.0f} s"
                    + self._why(),
                    {"egress": "allow_list"},
                )
            time.sleep(0.5)

    def _wait_gone(self) -> None:
        deadline = self.clock() + READY_WAIT
        while self.api.get("Deployment", self.name) is not None or self._pods():
            if self.clock() >= deadline:
                raise Unavailable(
                    "the old egress proxy did not go", {"egress": "allow_list"}
                )
            time.sleep(0.5)

    def _why(self) -> str:
        """What keeps the proxy's pod from being ready: its container's waiting
        reason, or the scheduler's (a pod no node has room for)."""
        for pod in self._pods():
            status = pod.get("status", {})
            for container in status.get("containerStatuses", []) or []:
                waiting = (container.get("state") or {}).get("waiting") or {}
                if waiting:
                    return f": {stuck(waiting)}"
            for condition in status.get("conditions", []) or []:
                if condition.get("status") == "False" and condition.get("message"):
                    return f": {condition.get('reason')}: {condition['message']}"
        return ""

    def remove(self) -> None:
        """Remove the proxy's Deployment, Service and trust bundle (its CA stays)."""
        with self._lock:
            self.api.delete("Deployment", self.name)
            self.api.delete("Service", self.name)
            self.api.delete("NetworkPolicy", self.name)
            self.api.delete("ConfigMap", kem.trust_config_map_name(self.name))
            self._ready = False
            self._address = None
            self._delivered.clear()

    # -- its configuration -------------------------------------------------------------

    # Backends come and go through ``registry`` (``register``, ``unregister``), which
    # calls ``_deliver`` at each change.

    def rebuild(self, rows: Iterable[BackendRow]) -> None:
        """The live allow-list backends after a restart of the controller."""
        with self._lock:
            if self.registry.rebuild(rows):
                self._deliver(self.registry.config())

    def _deliver(self, config: ProxyConfig) -> None:
        """The new configuration, into every ready proxy pod.

        Raises:
            ContainerEngineError: Proxy pods are ready and none took it.
        """
        self._stage(config)
        if not self._ready:
            return  # ensure() delivers it to the first ready pod
        pods = self._ready_pods()
        if pods and not self._deliver_to(pods):
            raise ContainerEngineError(
                "the egress proxy's configuration could not be written"
            )

    def _stage(self, config: ProxyConfig) -> None:
        """The configuration to deliver: a new generation."""
        self._data = config.model_dump_json().encode()
        self._generation += 1

    def _deliver_to(self, pods: Iterable[dict[str, Any]]) -> bool:
        """Write the configuration into each pod that lacks it; whether at least
        one pod holds it now."""
        held = False
        for pod in pods:
            uid = str(pod["metadata"]["uid"])
            if self._delivered.get(uid) == self._generation:
                held = True
                continue
            name = pod["metadata"]["name"]
            try:
                status, output = self.api.exec_in(
                    name,
                    kem.CONTAINER,
                    [
                        PROXY_COMMAND[0],
                        "-c",
                        WRITE_SCRIPT,
                        kem.CONFIG_PATH,
                        str(len(self._data)),
                    ],
                    stdin=self._data,
                    timeout=WRITE_TIMEOUT,
                )
            except ContainerEngineError as exc:
                logger.warning("egress: cannot configure %s: %s", name, exc)
                continue
            if status != 0:
                logger.warning("egress: configuring %s failed: %s", name, output[-500:])
                continue
            self._delivered[uid] = self._generation
            held = True
        live = {str(pod["metadata"]["uid"]) for pod in pods}
        for uid in [u for u in self._delivered if u not in live]:
            del self._delivered[uid]
        return held

    def sync(self) -> None:
        """Configure the proxy pods that lack the configuration (a pod Kubernetes
        started again); at most every ``SYNC_INTERVAL`` seconds."""
        with self._lock:
            if not self._ready or self.clock() - self._synced_at < SYNC_INTERVAL:
                return
            self._synced_at = self.clock()
            try:
                pods = self._ready_pods()
                if not pods and self.api.get("Deployment", self.name) is None:
                    # Deleted by hand: the next allow-list start makes it again.
                    logger.warning("egress: the proxy %s is gone", self.name)
                    self._ready = False
                    return
                self._deliver_to(pods)
            except ContainerEngineError as exc:
                logger.warning("egress: cannot list the proxy's pods: %s", exc)

    def blocked(self) -> list[str]:
        """The controller's own addresses: never reached, whatever a policy says."""
        return [
            f"{address}/{128 if ':' in address else 32}" for address in self.addresses()
        ]

    # -- its audit ---------------------------------------------------------------------

    def refusals(self, backend_id: str, limit: int = 10) -> list[EgressRefusal]:
        logs = []
        for pod in self._pods():
            try:
                logs.append(
                    self.api.logs(
                        pod["metadata"]["name"],
                        kem.CONTAINER,
                        LOG_TAIL,
                        timestamps=True,
                    )
                )
            except ContainerGone:
                continue
        return parse_refusals("\n".join(logs), backend_id, limit)

    def counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for pod in self._ready_pods():
            try:
                text = self.api.pod_get(
                    pod["metadata"]["name"], kem.METRICS_PORT, "/metrics"
                )
            except ContainerEngineError as exc:
                logger.info(
                    "egress: no metrics from %s: %s", pod["metadata"]["name"], exc
                )
                continue
            for decision, count in parse_counts(text).items():
                total[decision] = total.get(decision, 0) + count
        return total


def _is_ready(pod: Mapping[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    )


def _decoded(secret: Mapping[str, Any], key: str) -> bytes | None:
    value = (secret.get("data") or {}).get(key)
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value)
    except binascii.Error:
        return None
