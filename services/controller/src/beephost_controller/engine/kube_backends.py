"""``KubeBackends``: the backend engine port on Kubernetes.

A backend is a Pod with a Service, a Secret (its token's digest) and, without
network, a NetworkPolicy, all in one namespace (``kube_manifests.py`` writes them,
``kube_plan.py`` plans a start, ``kube_api.py`` sends them). The Service, Secret and
policy are the Pod's (owner references): deleting the Pod deletes them, and the
controller deletes them by name too, so nothing waits on the garbage collector.

Images: a pod pulls its image, so a launch first pushes the environment's local image
(built by the Docker engine beside the controller) to the registry of the settings
and names it by digest. Ready: the kubelet's readiness probe (HTTP ``/ready``; the
gRPC health service from Kubernetes 1.27, the server's ``healthcheck`` command
before), as Docker's health check on Docker. Restarts: the kubelet restarts a crashed
server in place (``OnFailure``: the workspace's emptyDir stays), the controller's
limit counts them (``kube_status.py``). Idleness: the server's activity file, read by
an exec only for a backend with an idle timeout, when ``IdleReads`` says a read is due
(before any stop, else about every tenth of the timeout). A sweep over every backend
reads the pods with one list. Installs and file copies go through the API server's
exec.
"""

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from beephost_controller.egress_registry import (
    MAX_REFUSALS,
    ensure_quietly,
    in_background,
    open_egress,
)
from beephost_controller.engine import kube_manifests as km
from beephost_controller.engine.idle_reads import IdleReads
from beephost_controller.engine.kube_api import KubeApi
from beephost_controller.engine.kube_egress import KubeEgress
from beephost_controller.engine.kube_egress_manifests import trust_config_map_name
from beephost_controller.engine.kube_plan import EgressRoute, KubePlan, plan
from beephost_controller.engine.kube_status import pod_state
from beephost_controller.engine.sandbox_env import (
    ACTIVITY_FILE,
    LABEL_BACKEND_ID,
    selector,
)
from beephost_controller.images.layout import CONTAINER_PORTS, server_command
from beephost_controller.kube_settings import KubernetesSettings
from beephost_controller.ports import (
    ContainerConfigRefused,
    ContainerEngineError,
    ContainerGone,
    ContainerState,
    EgressRefusal,
    ImageBuilder,
    ImagePublisher,
    LaunchFailed,
    Record,
    Sandbox,
    ServiceState,
)
from beephost_controller.rows import BackendRow, BackendUpdate, EnvironmentRow
from beephost_controller.secret_store import SecretStore
from beephost_controller.settings import Settings
from beephost_controller.starts import (
    BackendPlan,
    BackendRequest,
    Minted,
    is_backend_id,
    start_egress,
)
from beephost_protocol.errors import BeepHostError, InvalidRequest, Unavailable

logger = logging.getLogger(__name__)

#: Seconds at least between two reads of a backend's idle seconds (an exec each).
IDLE_READ_INTERVAL = 5.0
#: Seconds an exec into a backend (an install's steps, a copy) may take.
EXEC_TIMEOUT = 120.0
#: The first Kubernetes with the native gRPC probe as GA.
GRPC_PROBES = (1, 27)
#: What a backend's objects besides its Pod are (deleted with it, and by name).
DEPENDENTS = ("Service", "Secret", "NetworkPolicy")


class KubeBackends:
    """Backends as pods in one namespace (a ``BackendEngine``).

    Args:
        api: The namespaced API calls (``KubeApi``).
        publisher: Pushes environment images to the registry (the Docker engine's).
        images: Makes the egress proxy's image (None: allow-list starts fail).
        secrets: The stored secrets the egress proxy's configuration holds.
        extra_labels: More labels on every object (tests').
        clock: When a pod was created (its row's ``created_at``).
    """

    def __init__(
        self,
        settings: Settings,
        kube: KubernetesSettings,
        api: KubeApi,
        publisher: ImagePublisher,
        *,
        images: ImageBuilder | None = None,
        secrets: SecretStore | None = None,
        extra_labels: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.api = api
        self.publisher = publisher
        self.extra_labels = dict(extra_labels or {})
        self.clock = clock
        self._selector = {**self.extra_labels, **selector(settings)}
        self._published: dict[str, str] = {}
        self._publishing = threading.Lock()
        self._server: tuple[int, int] | None = None
        self._idle = IdleReads(time.monotonic, IDLE_READ_INTERVAL)
        #: A sweep's one listing of the pods (``pods``, by name), per thread.
        self._swept = threading.local()
        #: backend id -> its Service's ClusterIP.
        self._cluster_ips: dict[str, str] = {}
        self.egress = KubeEgress(
            settings,
            kube,
            api,
            images,
            lambda image: self._publish(image, "egress-proxy"),
            secrets or SecretStore(settings.secret_directory),
            extra_labels=self.extra_labels,
        )

    # -- a start -------------------------------------------------------------------------

    def plan(
        self,
        request: BackendRequest,
        environment: EnvironmentRow,
        minted: Minted,
        held_ports: Mapping[int, str],
    ) -> BackendPlan:
        del held_ports  # a pod's port is its own: no host port is held
        if not self.kube.registry:
            raise Unavailable(
                "the Kubernetes engine has no registry to push environment images to: "
                "set BEEPHOST_CONTROLLER_KUBERNETES_REGISTRY",
                {"engine": "kubernetes"},
            )
        row, layout = plan(
            request,
            environment,
            self.settings,
            self.kube,
            minted=minted,
            probe="grpc" if self._server_version() >= GRPC_PROBES else "exec",
            extra_labels=self.extra_labels,
            egress=self._egress_route(request, environment),
        )
        return BackendPlan(row=row, controller_token=None, layout=layout)

    def _egress_route(
        self, request: BackendRequest, environment: EnvironmentRow
    ) -> EgressRoute | None:
        """The egress proxy's address, for a start whose policy is an allow-list."""
        if start_egress(request, environment)[1] is None:
            return None
        try:
            address = self.egress.address()
        except ContainerEngineError as exc:
            raise Unavailable(
                f"the egress proxy's Service cannot be made: {exc}",
                {"engine": "kubernetes", "egress": "allow_list"},
            ) from exc
        return EgressRoute(
            address=address,
            labels=self.egress.labels,
            trust_config_map=trust_config_map_name(self.egress.name),
        )

    def _server_version(self) -> tuple[int, int]:
        if self._server is None:
            self._server = self.api.server_version()
        return self._server

    def release(self, planned: BackendPlan) -> None:
        pass  # planning takes nothing on a cluster

    def launch(self, planned: BackendPlan, record: Record) -> None:
        layout = planned.layout
        if not isinstance(layout, KubePlan):
            raise TypeError(f"not a Kubernetes plan: {type(layout).__name__}")
        pod = layout.pod
        open_egress(self.egress.ensure, self.egress.registry, planned.row)
        try:
            pod = replace(pod, image=self._publish(layout.local_image))
            created = self.api.create(km.pod(pod))
            uid = str(created["metadata"]["uid"])
            record(BackendUpdate(container_id=uid, created_at=self.clock()))
            # The pod's server cannot start before its Secret exists (it mounts it):
            # the policy that takes its network away is in place first.
            owner = km.owner_reference(pod.name, uid)
            if not pod.network:
                self.api.create(km.network_policy(pod, owner, self.kube.ingress_from))
            service = self.api.create(km.service(pod, owner))
            self._cluster_ips[planned.row.id] = str(service["spec"]["clusterIP"])
            self.api.create(km.token_secret(pod, owner))
        except ContainerEngineError as exc:
            undone = self._undo(pod.name)
            self.egress.registry.unregister(planned.row.id)
            raise LaunchFailed(_launch_error(exc), undone=undone) from exc

    def _publish(self, image: str, repository_name: str = "environments") -> str:
        """A local image's pull reference, pushed once per controller run (a push
        of what the registry holds sends a manifest only)."""
        with self._publishing:
            if image not in self._published:
                repository = (
                    f"{self.kube.registry}/{self.settings.name}/{repository_name}"
                )
                reference = self.publisher.publish(image, repository)
                pulled = self.kube.pulled_from
                self._published[image] = pulled + reference[len(self.kube.registry) :]
            return self._published[image]

    def _undo(self, name: str) -> bool:
        try:
            self._remove(name)
        except ContainerEngineError as exc:
            logger.warning("could not remove the failed start's %s: %s", name, exc)
            return False
        return True

    # -- status --------------------------------------------------------------------------

    @contextlib.contextmanager
    def sweep(self) -> Iterator[None]:
        try:
            pods = self.api.list("Pod", self._selector)
        except ContainerEngineError as exc:
            logger.warning("could not list the pods (each is read on its own): %s", exc)
            yield
            return
        self._swept.pods = {pod["metadata"]["name"]: pod for pod in pods}
        try:
            yield
        finally:
            self._swept.pods = None

    def state(self, row: BackendRow) -> ContainerState | None:
        pod = self._pod(row.container_name)
        if pod is None:
            return None
        state = pod_state(pod, self.settings.restart_limit)
        if row.config.egress_allow is not None:
            self.egress.sync()  # a proxy pod started again gets the configuration
        timeout = row.idle_timeout
        if state.status == "running" and timeout is not None:
            idle = self._idle.seconds(row.id, timeout, lambda: self._read_idle(row))
            state = replace(state, idle_seconds=idle)
        return state

    def _pod(self, name: str) -> km.Manifest | None:
        """The pod: from this thread's sweep if it has it, else read now."""
        listed: dict[str, km.Manifest] | None = getattr(self._swept, "pods", None)
        if listed is not None and name in listed:
            return listed[name]
        return self.api.get("Pod", name)

    def _read_idle(self, row: BackendRow) -> float | None:
        """The server's own count of its idle seconds (its activity file)."""
        try:
            status, output = self.api.exec_in(
                row.container_name,
                km.CONTAINER,
                ["cat", ACTIVITY_FILE],
                timeout=10,
            )
            return float(output.strip()) if status == 0 else None
        except (ContainerEngineError, ValueError) as exc:
            # Unknown idleness never stops a backend; logged, since its idle
            # timeout waits until a read succeeds.
            logger.info("could not read how long %s has been idle: %s", row.id, exc)
            return None

    def memory_used(self, row: BackendRow) -> int | None:
        """The pod's working set as metrics-server last sampled it (every 15-60 s);
        None without metrics-server (the API is optional), or before its first
        sample."""
        try:
            metrics = self.api.pod_metrics(row.container_name)
        except ContainerEngineError as exc:
            logger.debug("no memory figure for %s: %s", row.id, exc)
            return None
        return None if metrics is None else pod_memory(metrics)

    def service(self, container: str) -> ServiceState | None:
        """None: the chart's default backends are Deployments the console does not
        list (their pods' names change with every rollout)."""
        del container
        return None

    def endpoint(self, row: BackendRow, state: ContainerState) -> str | None:
        del state  # a Service's address does not change with its pod
        if self.kube.endpoint == "cluster-ip":
            address = self._cluster_ip(row)
            return None if address is None else self._url(row, address)
        domain = self.kube.cluster_domain
        return self._url(
            row, f"{row.container_name}.{self.kube.namespace}.svc.{domain}"
        )

    def probe_endpoint(self, row: BackendRow) -> str:
        # Its ClusterIP: the controller may run where the cluster's DNS is not.
        address = self._cluster_ip(row)
        return self._url(row, address or f"{row.container_name}.{self.kube.namespace}")

    def _cluster_ip(self, row: BackendRow) -> str | None:
        if row.id not in self._cluster_ips:
            service = self.api.get("Service", row.container_name)
            if service is None:
                return None
            self._cluster_ips[row.id] = str(service["spec"]["clusterIP"])
        return self._cluster_ips[row.id]

    @staticmethod
    def _url(row: BackendRow, host: str) -> str:
        scheme = "http" if row.type == "http" else "grpc"
        return f"{scheme}://{host}:{CONTAINER_PORTS[row.type]}"

    def restart(self, row: BackendRow) -> None:
        """Nothing to do: the kubelet restarts a crashed server in its pod, and
        ``state`` reports it exited only past the controller's limit."""
        del row

    # -- removal and logs ----------------------------------------------------------------

    def remove(self, row: BackendRow) -> None:
        self.egress.registry.unregister(row.id)
        self._remove(row.container_name)
        self._idle.forget(row.id)
        self._cluster_ips.pop(row.id, None)

    def _remove(self, name: str) -> None:
        # Its server exits on SIGTERM at once: a short grace, and the pod is gone in
        # seconds (a pod ignoring it would hold its name for the whole grace).
        self.api.delete("Pod", name, grace_seconds=km.GRACE_SECONDS)
        for kind in DEPENDENTS:
            self.api.delete(kind, name)

    def logs(self, row: BackendRow, tail: int) -> str:
        if self.api.get("Pod", row.container_name) is None:
            raise ContainerGone(f"pod {row.container_name} is gone")
        return self.api.logs(row.container_name, km.CONTAINER, tail)

    # -- inside a running backend --------------------------------------------------------

    def copy_in(self, row: BackendRow, path: str, data: bytes) -> None:
        self.api.put_archive(
            row.container_name,
            km.CONTAINER,
            path,
            data,
            python=server_command(row.type)[0],
            timeout=EXEC_TIMEOUT,
        )

    def exec_in(
        self, row: BackendRow, command: Sequence[str], user: str, timeout: float
    ) -> tuple[int, str]:
        # An exec runs as the pod's user: the server's, which ``user`` names too.
        del user
        return self.api.exec_in(
            row.container_name, km.CONTAINER, command, timeout=timeout
        )

    # -- reconciliation ------------------------------------------------------------------

    def sandboxes(self) -> list[Sandbox]:
        found = []
        for pod in self.api.list("Pod", self._selector):
            backend_id = _backend_id(pod)
            if backend_id is not None and not _going(pod):
                state = pod_state(pod, self.settings.restart_limit)
                found.append(Sandbox(backend_id, state))
        return found

    def tidy(self, live: Iterable[BackendRow], used_images: Iterable[str]) -> int:
        """Remove pods of backends without a row, and the Services, Secrets and
        policies no live backend has (a start a crash cut short)."""
        live = list(live)
        alive = {row.id for row in live}
        self._restore_egress([row for row in live if row.status != "stopped"])
        self.release_images(used_images)
        removed = 0
        for pod in self.api.list("Pod", self._selector):
            backend_id = _backend_id(pod)
            if _going(pod):
                continue  # deleted already, and going: no orphan
            if backend_id is not None and backend_id not in alive:
                logger.info("removing orphan pod %s", pod["metadata"]["name"])
                self._remove(pod["metadata"]["name"])
                removed += 1
        for kind in DEPENDENTS:
            for item in self.api.list(kind, self._selector):
                backend_id = _backend_id(item)
                if backend_id is not None and backend_id not in alive:
                    self.api.delete(kind, item["metadata"]["name"])
        return removed

    def _restore_egress(self, live: list[BackendRow]) -> None:
        """The proxy's configuration from the live backends (after a restart of the
        controller), and the proxy made in the background if one of them has an
        allow-list, as on Docker (its image and rollout may take minutes: start-up
        does not wait for them; a start does, under the proxy's lock)."""
        try:
            self.egress.rebuild(live)
        except ContainerEngineError as exc:
            logger.warning("egress: the proxy's configuration not written: %s", exc)
        if self.egress.registry.registered:
            in_background(lambda: ensure_quietly(self.egress.ensure))

    def image_disk_use(self) -> dict[str, int]:
        return {}  # the nodes' and the registry's disks are the cluster's business

    def release_images(self, used: Iterable[str]) -> None:
        kept = set(used)
        with self._publishing:
            for image in [i for i in self._published if i not in kept]:
                del self._published[image]

    def settle(self, timeout: float) -> bool:
        del timeout
        return True  # no background work of its own

    def remove_shared(self) -> None:
        """The egress proxy (the namespace and its Role are the operator's)."""
        self.egress.remove()

    def egress_refusals(self, row: BackendRow) -> list[EgressRefusal]:
        if row.config.egress_allow is None:
            return []
        return self.egress.refusals(row.id, limit=MAX_REFUSALS)

    def egress_counts(self) -> dict[str, int]:
        return self.egress.counts()

    def relay_counts(self) -> dict[str, int]:
        return {}  # a pod's port is its own: no relay

    def prepare_egress(self, log: Callable[[str], None]) -> None:
        self.egress.ensure(log)


def _going(pod: Mapping[str, Any]) -> bool:
    """Whether a pod is being deleted (its stop is under way: a stopped backend's, or
    one deleted by hand, whose row ``state`` reports)."""
    return bool(pod.get("metadata", {}).get("deletionTimestamp"))


def _backend_id(item: Mapping[str, Any]) -> str | None:
    value = (item.get("metadata", {}).get("labels") or {}).get(LABEL_BACKEND_ID, "")
    return value if is_backend_id(value) else None


def _launch_error(exc: ContainerEngineError) -> BeepHostError:
    if isinstance(exc, ContainerConfigRefused):
        return InvalidRequest(f"the cluster refused the backend: {exc}")
    return Unavailable(f"could not start backend: {exc}")


def pod_memory(metrics: Mapping[str, Any]) -> int | None:
    """The bytes of memory a ``PodMetrics`` says its containers use (their sum);
    None when it lists none or a quantity does not parse."""
    containers = metrics.get("containers") or []
    if not containers:
        return None
    total = 0
    for container in containers:
        try:
            count = memory_quantity(str(container["usage"]["memory"]))
        except (KeyError, TypeError):
            count = None
        if count is None:
            return None
        total += count
    return total


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGTPE]i|[kMGTPE])?$")
_UNITS: dict[str | None, int] = {
    None: 1,
    **{f"{p}i": 1 << (10 * (n + 1)) for n, p in enumerate("KMGTPE")},
    **{p: 1000 ** (n + 1) for n, p in enumerate("kMGTPE")},
}


def memory_quantity(text: str) -> int | None:
    """Bytes from a Kubernetes quantity as metrics-server writes memory (``12345Ki``,
    ``64Mi``, ``1000``); None for any other form."""
    match = _QUANTITY.match(text.strip())
    if match is None:
        return None
    return int(float(match[1]) * _UNITS[match[2]])
