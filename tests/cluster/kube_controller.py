"""A controller process whose engine is the test cluster: ``ENGINE=kubernetes``, its
sandboxes in a namespace of the test's own, images built by the machine's Docker
engine and pushed to the test bed's registry.

What it builds carries a run label (the images are removed by it afterwards), and
every Kubernetes object it makes carries its name (``io.beephost.controller``)."""

import json
import signal
import uuid
from dataclasses import dataclass, field

from scripts.local_controller import LocalController

from beephost_client.controller import ControllerClient


@dataclass(kw_only=True)
class KubeController(LocalController):
    """One controller on the cluster: ``namespace`` for its pods, ``registry`` for
    its images, ``kubeconfig`` to reach the API server."""

    kubeconfig: str
    namespace: str
    registry: str
    labels: dict[str, str]
    name: str = field(default_factory=lambda: f"kube-{uuid.uuid4().hex[:8]}")

    @property
    def repository(self) -> str:
        return f"beephost-{self.name}"

    def defaults(self) -> dict[str, str]:
        return {
            **super().defaults(),
            "NAME": self.name,
            "ENGINE": "kubernetes",
            "KUBERNETES_KUBECONFIG": self.kubeconfig,
            "KUBERNETES_NAMESPACE": self.namespace,
            "KUBERNETES_REGISTRY": f"{self.registry}/{self.repository}",
            # The controller runs on the node, outside the cluster's DNS.
            "KUBERNETES_ENDPOINT": "cluster-ip",
            "PYTHONS": '["3.11"]',
            "ENVIRONMENT_REPOSITORY": f"{self.repository}/env",
            "BASE_IMAGE_REPOSITORY": f"{self.repository}/python",
            "BACKEND_IMAGE_PREFIX": self.repository,
            "LABELS": json.dumps(self.labels),
            "SUPERVISE_INTERVAL": "0.5",
        }

    def client(self, timeout: float = 30.0) -> ControllerClient:
        return ControllerClient(self.url, timeout=timeout)

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None
