"""The egress proxy's objects on Kubernetes, as manifests: no I/O.

One proxy per controller, in the sandbox namespace, all named
``beephost-<NAME>-egress`` (``proxy_name``) and labelled with the controller's
selector and ``io.beephost.egress.proxy``:

- a Deployment of the proxy's image (``serve.py`` with mitmdump listening on the pod's
  address, its counters on ``METRICS_PORT``), as user 10002 with every capability
  dropped and a read-only root; its configuration is written into each pod by the
  controller (``kube_egress``), on a memory ``emptyDir``, never in the pod's spec;
- a ClusterIP Service: the one address an allow-list sandbox's firewall lets it reach,
  and a NetworkPolicy that lets the controller's sandboxes in on its port;
- a Secret ``...-egress-ca``: mitmproxy's confdir (the CA's key, for intercepted
  destinations), mounted into the proxy only; made once and kept (the sandboxes
  trust it);
- a ConfigMap ``...-egress-trust``: what sandboxes verify TLS with (public CAs and the
  proxy's CA) and, when set, the CA bundle the proxy trusts for its destinations.
"""

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from beephost_controller.engine.sandbox_env import EGRESS_PORT
from beephost_controller.images.egress_proxy import PROXY_COMMAND

Manifest = dict[str, Any]

#: The proxy's container, and where its pods serve their counters.
CONTAINER = "proxy"
METRICS_PORT = 9090
#: In the proxy's pod: its CA (the Secret) and the trust ConfigMap, read-only, and the
#: configuration the controller writes (a memory emptyDir at /tmp).
CA_DIR = "/run/egress/ca"
TRUST_DIR = "/run/egress/trust"
CONFIG_PATH = "/tmp/egress/config.json"
#: The trust ConfigMap's keys.
BUNDLE_KEY = "ca-bundle.pem"
UPSTREAM_KEY = "upstream-ca.pem"
#: Who the proxy runs as (as on Docker: ``docker_egress.PROXY_USER``).
PROXY_UID = 10002
#: What the proxy's pod asks the scheduler for (its limits are ``ProxyPlan``'s).
PROXY_CPU_REQUEST = "100m"
PROXY_MEMORY_REQUEST = "128Mi"
#: On the Deployment: what it runs, so that another image or upstream bundle replaces it.
ANNOTATION_VERSION = "io.beephost.egress.version"


@dataclass(frozen=True)
class ProxyPlan:
    """Everything the proxy's objects are made of."""

    name: str
    namespace: str
    #: The controller's selector and the proxy's label (every object's labels).
    labels: Mapping[str, str]
    #: The image's pull reference (by digest).
    image: str
    #: What the Deployment runs (the image and the upstream bundle's digests).
    version: str
    replicas: int = 1
    upstream_ca: bool = False
    memory_mb: int = 512
    cpus: float = 1.0

    @property
    def ca_secret(self) -> str:
        return f"{self.name}-ca"

    @property
    def trust_config_map(self) -> str:
        return trust_config_map_name(self.name)


def trust_config_map_name(proxy: str) -> str:
    return f"{proxy}-trust"


def _metadata(plan: ProxyPlan, name: str) -> Manifest:
    return {"name": name, "namespace": plan.namespace, "labels": dict(plan.labels)}


def command(plan: ProxyPlan) -> list[str]:
    """serve.py on the pod's address, without a relay socket."""
    argv = [
        *PROXY_COMMAND,
        "--socket", "",
        "--listen-host", "0.0.0.0",
        "--port", str(EGRESS_PORT),
        "--metrics", f"0.0.0.0:{METRICS_PORT}",
        "--config", CONFIG_PATH,
        "--confdir", CA_DIR,
    ]  # fmt: skip
    if plan.upstream_ca:
        argv += [
            "--",
            "--set",
            f"ssl_verify_upstream_trusted_ca={TRUST_DIR}/{UPSTREAM_KEY}",
        ]
    return argv


def deployment(plan: ProxyPlan) -> Manifest:
    """The proxy's Deployment."""
    limits = {"cpu": f"{round(plan.cpus * 1000)}m", "memory": f"{plan.memory_mb}Mi"}
    container: Manifest = {
        "name": CONTAINER,
        "image": plan.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command(plan),
        # Its node (a process controller's host, the kubelet): refused whatever a
        # policy says, as the controller's own addresses are.
        "env": [
            {
                "name": "EGRESS_BLOCKED",
                "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}},
            }
        ],
        "ports": [
            {"name": "proxy", "containerPort": EGRESS_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        # Requests well below the limits: idle, the proxy uses a few MiB and no CPU,
        # and a node's capacity is the sandboxes' first.
        "resources": {
            "limits": limits,
            "requests": {"cpu": PROXY_CPU_REQUEST, "memory": PROXY_MEMORY_REQUEST},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": PROXY_UID,
            "runAsGroup": PROXY_UID,
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "ca", "mountPath": CA_DIR, "readOnly": True},
            {"name": "trust", "mountPath": TRUST_DIR, "readOnly": True},
        ],
        "readinessProbe": {
            "tcpSocket": {"port": "proxy"},
            "periodSeconds": 1,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "tcpSocket": {"port": "proxy"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: Manifest = {
        "containers": [container],
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 5,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": PROXY_UID,
            "runAsGroup": PROXY_UID,
            # The CA's Secret is mounted 0440 to this group: the proxy's user reads it.
            "fsGroup": PROXY_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumes": [
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
            {
                "name": "ca",
                "secret": {"secretName": plan.ca_secret, "defaultMode": 0o440},
            },
            {"name": "trust", "configMap": {"name": plan.trust_config_map}},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            **_metadata(plan, plan.name),
            "annotations": {ANNOTATION_VERSION: plan.version},
        },
        "spec": {
            "replicas": plan.replicas,
            "selector": {"matchLabels": dict(plan.labels)},
            "template": {
                "metadata": {"labels": dict(plan.labels)},
                "spec": pod_spec,
            },
        },
    }


def service(plan: ProxyPlan) -> Manifest:
    """The proxy's one address (its ClusterIP) for the sandboxes' firewalls."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(plan, plan.name),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(plan.labels),
            "ports": [
                {
                    "name": "proxy",
                    "port": EGRESS_PORT,
                    "targetPort": "proxy",
                    "protocol": "TCP",
                }
            ],
        },
    }


def network_policy(plan: ProxyPlan, clients: Mapping[str, str]) -> Manifest:
    """Ingress to the proxy: its port from the controller's sandboxes (``clients``),
    its counters from anyone (the API server's proxy reads them). NetworkPolicies
    add up: this opens what the chart's sandbox policy, which lets clients reach
    ports named ``api`` only, does not."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(plan, plan.name),
        "spec": {
            "podSelector": {"matchLabels": dict(plan.labels)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": dict(clients)}}],
                    "ports": [{"protocol": "TCP", "port": EGRESS_PORT}],
                },
                {"ports": [{"protocol": "TCP", "port": METRICS_PORT}]},
            ],
        },
    }


def ca_secret(plan: ProxyPlan, files: Mapping[str, bytes]) -> Manifest:
    """mitmproxy's confdir (``egress_ca.confdir_files``) as a Secret."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(plan, plan.ca_secret),
        "type": "Opaque",
        "data": {name: base64.b64encode(data).decode() for name, data in files.items()},
    }


def trust_config_map(
    plan: ProxyPlan, bundle: bytes, upstream: bytes | None
) -> Manifest:
    """The sandboxes' trust bundle, and the proxy's upstream bundle if any."""
    data = {BUNDLE_KEY: bundle.decode()}
    if upstream is not None:
        data[UPSTREAM_KEY] = upstream.decode()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(plan, plan.trust_config_map),
        "data": data,
    }
