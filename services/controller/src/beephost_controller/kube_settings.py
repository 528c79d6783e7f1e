"""The Kubernetes engine's settings, read from ``BEEPHOST_CONTROLLER_KUBERNETES_*``.

Used only when the controller's ``ENGINE`` is ``kubernetes``: where backends run
(the namespace), how the controller reaches the API server, where images go for the
nodes to pull, and where pods may be placed.
"""

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A DNS-1123 label: what a namespace's name must be.
_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# registry host[:port] and an optional path of lowercase components.
_REGISTRY_RE = re.compile(
    r"^[a-z0-9.-]+(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
)


class KubernetesSettings(BaseSettings):
    """Every field maps to ``BEEPHOST_CONTROLLER_KUBERNETES_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="BEEPHOST_CONTROLLER_KUBERNETES_", extra="ignore"
    )

    namespace: str = Field(
        "beephost-sandboxes",
        description="The namespace backends run in (the controller's Role is there; "
        "it has no right beyond it).",
    )
    kubeconfig: Path | None = Field(
        None,
        description="A kubeconfig file; unset: the pod's service account (a "
        "controller running in the cluster).",
    )
    registry: str = Field(
        "",
        description="Where the controller pushes environment images "
        "(host[:port]/path), with the Docker engine that builds them; pods name "
        "them by digest. Required.",
    )
    pull_registry: str = Field(
        "",
        description="The same registry as the nodes reach it, if its address differs "
        "from the controller's view (empty: REGISTRY).",
    )
    image_pull_secrets: list[str] = Field(
        default_factory=list,
        description="Names of docker-registry Secrets in the namespace, for pulls.",
    )
    endpoint: Literal["service-dns", "cluster-ip"] = Field(
        "service-dns",
        description="What a backend's endpoint names: its Service's DNS name "
        "(<name>.<namespace>.svc, for clients in the cluster) or its ClusterIP "
        "(for a cluster without DNS, or clients on a node).",
    )
    cluster_domain: str = Field(
        "cluster.local", description="The cluster's DNS domain (service-dns)."
    )
    runtime_class: str = Field(
        "",
        description="runtimeClassName of backend pods (gvisor, kata...); empty: the "
        "node's default runtime.",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="nodeSelector of backend pods (JSON)."
    )
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list, description="tolerations of backend pods (JSON)."
    )
    affinity: dict[str, Any] = Field(
        default_factory=dict, description="affinity of backend pods (JSON)."
    )
    topology_spread: list[dict[str, Any]] = Field(
        default_factory=list,
        description="topologySpreadConstraints of backend pods (JSON).",
    )
    cpu_request_ratio: float = Field(
        0.1,
        gt=0,
        le=1,
        description="The share of its CPU limit a backend pod requests (what the "
        "scheduler reserves); memory is requested in full.",
    )
    pod_firewall: bool = Field(
        True,
        description="Install a firewall in the network namespace of every backend "
        "pod without network (an init container with NET_ADMIN running nft from the "
        "pod's image): no egress, ingress on its port only, whatever the CNI. false: "
        "its NetworkPolicy alone, which only an enforcing CNI (Calico, Cilium...) "
        "applies; for namespaces whose Pod Security level forbids NET_ADMIN.",
    )
    ingress_from: list[dict[str, Any]] = Field(
        default_factory=list,
        description="NetworkPolicy peers allowed to reach a backend without network "
        "(JSON); empty: any peer, on the backend's port only.",
    )

    @field_validator("namespace")
    @classmethod
    def _namespace_shape(cls, value: str) -> str:
        if not _NAMESPACE_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a namespace name (a DNS-1123 label)")
        return value

    @field_validator("registry", "pull_registry")
    @classmethod
    def _registry_shape(cls, value: str) -> str:
        if value and not _REGISTRY_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a registry: host[:port][/path]")
        return value

    @property
    def pulled_from(self) -> str:
        """The registry as the nodes name it."""
        return self.pull_registry or self.registry
