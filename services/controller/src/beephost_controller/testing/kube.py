"""An in-memory ``KubeApi`` for unit tests of the Kubernetes engine's logic: objects
as dicts by (kind, name), a Deployment's pod made at once (ready unless told), execs
recorded and answered by a callable. Nothing here is Kubernetes: the cluster tests
(tests/cluster/) run the real thing."""

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from beephost_controller.ports import ContainerEngineError, ContainerGone

Manifest = dict[str, Any]


@dataclass
class Exec:
    """One exec: where, what, and its stdin."""

    pod: str
    container: str
    command: list[str]
    stdin: bytes | None


@dataclass
class MemoryKubeApi:
    namespace: str = "sandboxes"
    objects: dict[tuple[str, str], Manifest] = field(default_factory=dict)
    execs: list[Exec] = field(default_factory=list)
    #: Answers an exec: (status, output).
    answer: Callable[[Exec], tuple[int, str]] = lambda _: (0, "")
    #: Whether a Deployment's new pod is ready.
    pods_ready: bool = True
    logs_by_pod: dict[str, str] = field(default_factory=dict)
    metrics_by_pod: dict[str, str] = field(default_factory=dict)
    _uids: Any = field(default_factory=lambda: itertools.count(1))

    def create(self, manifest: Manifest) -> Manifest:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        if (kind, name) in self.objects:
            raise ContainerEngineError(f"create {kind} {name}: already exists")
        made = {**manifest, "metadata": {**manifest["metadata"], "uid": self._uid()}}
        if kind == "Service":
            made["spec"] = {
                **made["spec"],
                "clusterIP": f"10.96.0.{len(self.objects) + 10}",
            }
        self.objects[(kind, name)] = made
        if kind == "Deployment":
            self.start_pod(made)
        return made

    def _uid(self) -> str:
        return f"uid-{next(self._uids)}"

    def start_pod(self, deployment: Manifest) -> Manifest:
        """A pod of ``deployment`` (as its ReplicaSet would make one)."""
        template = deployment["spec"]["template"]
        uid = self._uid()
        pod = {
            "kind": "Pod",
            "metadata": {
                "name": f"{deployment['metadata']['name']}-{uid}",
                "uid": uid,
                "labels": dict(template["metadata"]["labels"]),
            },
            "spec": template["spec"],
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True"}
                    if self.pods_ready
                    else {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes are available: 1 Insufficient cpu.",
                    }
                ]
            },
        }
        self.objects[("Pod", pod["metadata"]["name"])] = pod
        return pod

    def get(self, kind: str, name: str) -> Manifest | None:
        return self.objects.get((kind, name))

    def list(self, kind: str, labels: Mapping[str, str]) -> list[Manifest]:
        return [
            item
            for (k, _), item in self.objects.items()
            if k == kind
            and all(
                item["metadata"].get("labels", {}).get(a) == b
                for a, b in labels.items()
            )
        ]

    def delete(self, kind: str, name: str, *, grace_seconds: int | None = None) -> None:
        del grace_seconds
        self.objects.pop((kind, name), None)
        if kind == "Deployment":
            for key in [
                k for k in self.objects if k[0] == "Pod" and k[1].startswith(name)
            ]:
                del self.objects[key]

    def exec_in(
        self,
        pod: str,
        container: str,
        command: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float,
    ) -> tuple[int, str]:
        del timeout
        if ("Pod", pod) not in self.objects:
            raise ContainerGone(f"pod {pod} is gone")
        call = Exec(pod, container, list(command), stdin)
        self.execs.append(call)
        return self.answer(call)

    def logs(
        self, pod: str, container: str, tail: int, *, timestamps: bool = False
    ) -> str:
        del container, tail, timestamps
        return self.logs_by_pod.get(pod, "")

    def pod_get(self, pod: str, port: int, path: str) -> str:
        del port, path
        return self.metrics_by_pod.get(pod, "")
