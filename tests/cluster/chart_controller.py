"""The controller as users deploy it on a cluster: the chart's manifests, applied.

``installed_chart`` renders ``charts/beephost`` (as ``helm install`` would, offline with
helm_python), with the controller's image pushed to the test bed's registry and named
by digest, the Kubernetes engine (the chart's default), its sandboxes in a namespace
of the test's own, and Docker access for builds only through ``controller.docker.host``
with client certificates: the machine's engine behind ``tls_relay``, the chart's
documented way (it never mounts a node's socket). Then it applies every object through
the API server, waits for the controller's pod to be ready and reaches it at its
Service's ClusterIP, as any client on a node would.

Cleanup: both namespaces (and with them every object the chart and the controller
made), the pushed controller image, the relay; what the controller built carries the
run's labels, removed by the caller.
"""

import base64
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python
import yaml
from kubernetes import client, utils

from beephost_client.controller import ControllerClient
from tests.cluster.conftest import (
    TEST_LABEL,
    Cluster,
    delete_namespaces,
    forget_pushed,
    push_by_digest,
    wait_until,
)
from tests.cluster.kube_controller import without_beephost
from tests.cluster.tls_relay import make_certificates
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "beephost"
RELEASE = "beephost"
#: The controller image scripts/build-images --controller tags for compose.
LOCAL_CONTROLLER_IMAGE = "beephost/controller:local"
#: The order objects are created in: what others name first.
_FIRST = ("Namespace", "ServiceAccount", "Secret", "ConfigMap", "Role", "RoleBinding")
_SELECTOR = "app.kubernetes.io/component=controller"
#: Where the chart mounts ``controller.caBundle`` (the ConfigMap's ``ca.pem``).
CA_BUNDLE_PATH = "/etc/beephost/ca-bundle/ca.pem"


@dataclass
class ChartController:
    """The chart's controller, driven as the tests drive a controller process."""

    cluster: Cluster
    release_namespace: str
    #: The sandbox namespace: where its backends' pods are.
    namespace: str
    name: str
    token: str
    service_ip: str
    #: Its container's restarts when it was last killed.
    _killed_at: int = field(default=0, init=False)

    @property
    def repository(self) -> str:
        """Where in the registry its environment images go (sandboxes.registry)."""
        return f"beephost-{self.name}"

    @property
    def url(self) -> str:
        return f"http://{self.service_ip}:8600"

    def client(self, timeout: float = 30.0) -> ControllerClient:
        return ControllerClient(self.url, token=self.token, timeout=timeout)

    def cli_environ(self) -> dict[str, str]:
        """What ``beep-host`` needs to reach it: its token."""
        return {
            **without_beephost(),
            "BEEPHOST_CONTROLLER_TOKEN": self.token,
        }

    def _pod(self) -> dict[str, Any]:
        (pod,) = self.cluster.core.list_namespaced_pod(
            self.release_namespace, label_selector=_SELECTOR
        ).items
        data: dict[str, Any] = self.cluster.as_json(pod)
        return data

    def _restarts(self) -> int:
        statuses = self._pod()["status"].get("containerStatuses", [])
        return sum(int(s["restartCount"]) for s in statuses)

    def kill(self) -> None:
        """SIGKILL the controller's process (its container on the node's engine): no
        shutdown code runs; the kubelet starts it again in the same pod, whose
        ``/data`` (an emptyDir here) keeps the SQLite state."""
        self._killed_at = self._restarts()
        ids = subprocess.run(
            [
                "docker", "ps", "-q",
                "--filter", f"label=io.kubernetes.pod.namespace={self.release_namespace}",
                "--filter", "label=io.kubernetes.container.name=controller",
            ],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert len(ids) == 1, ids
        subprocess.run(
            ["docker", "kill", "--signal", "KILL", ids[0]],
            capture_output=True,
            check=True,
        )

    def start(self) -> None:
        """After :meth:`kill`: wait until the kubelet restarted it and it is ready."""
        wait_until(
            "the controller restarted by the kubelet",
            lambda: self._restarts() > self._killed_at,
            timeout=120,
        )
        _wait_ready(self.url)

    def log(self) -> str:
        """Its current container's log."""
        pod = self._pod()["metadata"]["name"]
        text: str = self.cluster.core.read_namespaced_pod_log(
            pod, self.release_namespace, container="controller"
        )
        return text


def _wait_ready(url: str) -> None:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=3) as reply:
                return bool(reply.status == 200)
        except urllib.error.HTTPError as error:
            # A 503 while it starts: the error holds the connection, closed here
            # rather than whenever the collector finds it (a ResourceWarning then).
            with error:
                return False

    wait_until(f"the controller at {url} ready", ready, timeout=180)


def render(values: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    """The chart's objects as ``helm install`` would create them (no hooks, no NOTES)."""
    with helm_python.Chart.load(CHART) as chart:
        files = chart.render(values, name=RELEASE, namespace=namespace)
    docs = [
        doc
        for path, text in sorted(files.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc and "helm.sh/hook" not in doc["metadata"].get("annotations", {})
    ]
    for doc in docs:
        doc["metadata"].setdefault("namespace", namespace)
    order = {kind: i for i, kind in enumerate(_FIRST)}
    return sorted(docs, key=lambda doc: order.get(doc["kind"], len(_FIRST)))


def _values(
    *,
    name: str,
    sandboxes: str,
    registry: str,
    image: str,
    docker_host: str,
    labels: dict[str, str],
    settings: Mapping[str, str],
) -> dict[str, Any]:
    repository, _, digest = image.partition("@")
    setting = [
        ("NAME", name),
        ("PYTHONS", '["3.11"]'),
        ("ENVIRONMENT_REPOSITORY", f"beephost-{name}/env"),
        ("LABELS", json.dumps(labels)),
        ("SUPERVISE_INTERVAL", "0.5"),
        *settings.items(),
    ]
    return {
        "controller": {
            "image": {"repository": repository, "digest": digest},
            # An emptyDir: the test bed has no volume provisioner. It outlives a
            # restart of the container, which is what the kill test needs.
            "persistence": {"enabled": False},
            "docker": {"host": docker_host, "tlsSecret": "docker-tls"},
            "caBundle": {"configMap": "ca-bundle", "key": "ca.pem"},
            "extraEnv": [
                {"name": f"BEEPHOST_CONTROLLER_{key}", "value": value}
                for key, value in setting
            ],
        },
        "sandboxes": {
            "namespace": sandboxes,
            "registry": f"{registry}/beephost-{name}",
            # Its clients (these tests) are on the node, and the test bed has no DNS.
            "endpoint": "cluster-ip",
        },
        "httpBackend": {"enabled": False},
        "rpcBackend": {"enabled": False},
        "pipeBackend": {"enabled": False},
        "tests": {"enabled": False},
    }


def _ca_bundle() -> bytes:
    """The machine's CA bundle: package downloads from the pod go the same way."""
    path = os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
    return Path(path).read_bytes()


@contextmanager
def installed_chart(
    cluster: Cluster,
    workdir: Path,
    labels: dict[str, str],
    *,
    settings: Mapping[str, str] | None = None,
    trusted: bytes = b"",
) -> Iterator[ChartController]:
    """The chart installed in a namespace of its own; everything removed afterwards.

    Args:
        settings: More controller settings (without ``BEEPHOST_CONTROLLER_``).
        trusted: More CA certificates (PEM) in ``controller.caBundle``'s ConfigMap,
            mounted at ``CA_BUNDLE_PATH`` in the controller's pod.
    """
    name = f"chart-{uuid.uuid4().hex[:8]}"
    release_namespace = f"bh-{name}"
    sandboxes = f"{release_namespace}-sandboxes"
    repository = f"{cluster.registry}/beephost-{name}/controller"
    tag = f"{repository}:{uuid.uuid4().hex[:12]}"
    subprocess.run(
        ["docker", "tag", LOCAL_CONTROLLER_IMAGE, tag], capture_output=True, check=True
    )
    image = push_by_digest(tag, repository)
    certificates = make_certificates(workdir / "docker-tls", cluster.node_ip)
    relay_port = free_port()
    relay = subprocess.Popen(
        [
            sys.executable, "-m", "tests.cluster.tls_relay",
            "--listen", f"{cluster.node_ip}:{relay_port}",
            "--certificates", str(certificates.directory),
        ],
        cwd=REPO,
    )  # fmt: skip
    try:
        cluster.core.create_namespace(
            client.V1Namespace(
                metadata=client.V1ObjectMeta(
                    name=release_namespace, labels={TEST_LABEL: "chart"}
                )
            )
        )
        cluster.core.create_namespaced_secret(
            release_namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="docker-tls"),
                data={
                    key: base64.b64encode(value).decode()
                    for key, value in certificates.client_files.items()
                },
            ),
        )
        cluster.core.create_namespaced_config_map(
            release_namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name="ca-bundle"),
                data={"ca.pem": (_ca_bundle() + trusted).decode()},
            ),
        )
        values = _values(
            name=name,
            sandboxes=sandboxes,
            registry=cluster.registry,
            image=image,
            docker_host=f"tcp://{cluster.node_ip}:{relay_port}",
            labels=labels,
            settings=settings or {},
        )
        for doc in render(values, release_namespace):
            utils.create_from_dict(cluster.api, doc)  # type: ignore[no-untyped-call]  # untyped in the client
        controller = ChartController(
            cluster=cluster,
            release_namespace=release_namespace,
            namespace=sandboxes,
            name=name,
            token=_secret(cluster, release_namespace, "beephost-tokens")[
                "controller-token"
            ],
            service_ip=_service_ip(cluster, release_namespace),
        )
        _wait_ready(controller.url)
        yield controller
    finally:
        delete_namespaces(cluster, [sandboxes, release_namespace])
        relay.send_signal(signal.SIGTERM)
        relay.wait(10)
        forget_pushed(cluster, image)


def _secret(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    secret = cluster.core.read_namespaced_secret(name, namespace)
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def _service_ip(cluster: Cluster, namespace: str) -> str:
    (service,) = cluster.core.list_namespaced_service(
        namespace, label_selector=_SELECTOR
    ).items
    ip: str = cluster.as_json(service)["spec"]["clusterIP"]
    return ip
