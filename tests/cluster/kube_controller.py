"""A controller process whose engine is the test cluster: ``ENGINE=kubernetes``, its
sandboxes in a namespace of the test's own, images built by the machine's Docker
engine and pushed to the test bed's registry.

What it builds carries a run label (the images are removed by it afterwards), and
every Kubernetes object it makes carries its name (``io.beephost.controller``)."""

import json
import os
import signal
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from scripts.local_controller import LocalController

from beephost_client.controller import ControllerClient


def without_beephost() -> dict[str, str]:
    """This process's environment without its ``BEEPHOST_*`` settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BEEPHOST_")}


class ClusterController(Protocol):
    """What the cluster tests drive, whether the controller is a process on the node
    (``KubeController``) or the chart's pod (``chart_controller.ChartController``)."""

    @property
    def name(self) -> str:
        """Its name: on every object it makes (``io.beephost.controller``)."""

    @property
    def namespace(self) -> str:
        """Where its backends' pods are."""

    @property
    def repository(self) -> str:
        """Its images' path in the registry."""

    @property
    def url(self) -> str: ...

    def client(self, timeout: float = 30.0) -> ControllerClient: ...

    def cli_environ(self) -> dict[str, str]:
        """The environment ``beep-host`` needs to reach it."""

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""

    def start(self) -> None:
        """After :meth:`kill`: running and ready again."""

    def log(self) -> str:
        """Its log since the last start, at least."""


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

    def cli_environ(self) -> dict[str, str]:
        """On loopback it needs no token: this environment without BEEPHOST_*."""
        return without_beephost()

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None
