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
an exec at most every ``IDLE_READ_INTERVAL`` seconds, and only for a backend with an
idle timeout. Installs and file copies go through the API server's exec.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from beephost_controller.engine import kube_manifests as km
from beephost_controller.engine.kube_api import KubeApi
from beephost_controller.engine.kube_plan import KubePlan, plan
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
    ImagePublisher,
    LaunchFailed,
    Record,
    Sandbox,
)
from beephost_controller.rows import BackendRow, BackendUpdate, EnvironmentRow
from beephost_controller.settings import Settings
from beephost_controller.starts import (
    BackendPlan,
    BackendRequest,
    Minted,
    is_backend_id,
)
from beephost_protocol.errors import BeepHostError, InvalidRequest, Unavailable

logger = logging.getLogger(__name__)

#: Seconds between two reads of a backend's idle seconds (an exec each).
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
        #: backend id -> (when read, idle seconds).
        self._idle: dict[str, tuple[float, float | None]] = {}
        #: backend id -> its Service's ClusterIP.
        self._cluster_ips: dict[str, str] = {}

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
        )
        return BackendPlan(row=row, controller_token=None, layout=layout)

    def _server_version(self) -> tuple[int, int]:
        if self._server is None:
            self._server = self.api.server_version()
        return self._server

    def launch(self, planned: BackendPlan, record: Record) -> None:
        layout = planned.layout
        if not isinstance(layout, KubePlan):
            raise TypeError(f"not a Kubernetes plan: {type(layout).__name__}")
        pod = layout.pod
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
            raise LaunchFailed(_launch_error(exc), undone=undone) from exc

    def _publish(self, image: str) -> str:
        """The environment image's pull reference, pushed once per controller run
        (a push of what the registry holds sends a manifest only)."""
        with self._publishing:
            if image not in self._published:
                repository = f"{self.kube.registry}/{self.settings.name}/environments"
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

    def state(self, row: BackendRow) -> ContainerState | None:
        pod = self.api.get("Pod", row.container_name)
        if pod is None:
            return None
        state = pod_state(pod, self.settings.restart_limit)
        if state.status == "running" and row.idle_timeout is not None:
            state = replace(state, idle_seconds=self._idle_seconds(row))
        return state

    def _idle_seconds(self, row: BackendRow) -> float | None:
        now = time.monotonic()
        read_at, idle = self._idle.get(row.id, (float("-inf"), None))
        if now - read_at < IDLE_READ_INTERVAL:
            # Between two reads it grows as time does, or a request reset it: the
            # next read says which.
            return None if idle is None else idle + (now - read_at)
        try:
            status, output = self.api.exec_in(
                row.container_name,
                km.CONTAINER,
                ["cat", ACTIVITY_FILE],
                timeout=10,
            )
            seconds = float(output.strip()) if status == 0 else None
        except (ContainerEngineError, ValueError):
            seconds = None  # not known: never a reason to stop it
        self._idle[row.id] = (now, seconds)
        return seconds

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
        self._remove(row.container_name)
        self._idle.pop(row.id, None)
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
        alive = {row.id for row in live}
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
        """Nothing: the namespace and its Role are the operator's (the chart's)."""

    def egress_refusals(self, row: BackendRow) -> list[EgressRefusal]:
        """None: no allow-list backend starts on Kubernetes yet (refused)."""
        return []

    def egress_counts(self) -> dict[str, int]:
        return {}


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
