"""A backend on Kubernetes, as the objects the API server is sent: pure, no I/O.

One backend is a Pod, a Service that gives it a stable address, a Secret that holds
its token's digest (mounted as a file: never an environment variable, never in the
Pod's spec) and, when it has no network, a NetworkPolicy that denies every egress and
lets ingress in on its port only, and an init container that installs the same rules
in the pod's own network namespace (``kube_firewall``: enforced on any CNI). Only
core/v1 and networking.k8s.io/v1 are used: stable from Kubernetes 1.20 to today's
releases.

The Pod is hardened as a backend container is on Docker (``specs.ContainerSpec``):
non-root, read-only root filesystem, every capability dropped, ``RuntimeDefault``
seccomp, no privilege escalation, no service-account token, no service links (the
other Services' addresses in its environment). The Service, Secret and NetworkPolicy
are owned by the Pod (``owner_reference``): deleting it deletes them.
"""

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from beephost_controller.engine.kube_firewall import init_container

Manifest = dict[str, Any]

#: Where the token's digest is mounted in a backend's pod (read by the server's
#: ``TOKEN_SHA256_FILE`` setting).
TOKEN_DIR = "/run/beephost-token"
TOKEN_KEY = "token-sha256"
#: Seconds a pod gets to stop: the servers exit on SIGTERM within one.
GRACE_SECONDS = 5
#: The Pod's only container (``kubectl logs``, exec).
CONTAINER = "backend"
#: A label value: 63 characters at most, alphanumeric at both ends.
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

#: How the kubelet checks a backend: an HTTP GET, the gRPC health service (Kubernetes
#: 1.27 and later), or its image's health-check command (any version).
ProbeKind = Literal["http", "grpc", "exec"]


@dataclass(frozen=True)
class Placement:
    """Where a backend's pod may run and in which runtime (the operator's settings)."""

    runtime_class: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    affinity: Mapping[str, Any] = field(default_factory=dict)
    topology_spread: Sequence[Mapping[str, Any]] = ()
    image_pull_secrets: Sequence[str] = ()
    #: The fraction of its CPU limit a pod requests (what the scheduler reserves).
    cpu_request_ratio: float = 0.1


@dataclass(frozen=True)
class PodPlan:
    """Everything one backend's objects are made of."""

    name: str
    namespace: str
    image: str
    command: Sequence[str]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    #: Plain settings; the token's digest is not one of them (``token_sha256``).
    environment: Mapping[str, str]
    token_sha256: str
    #: The setting that names the digest's file (``BEEPHOST_<TYPE>_BACKEND_...``).
    token_file_setting: str
    port: int
    probe: ProbeKind
    #: The image's health-check argv (the ``exec`` probe's).
    healthcheck: Sequence[str]
    uid: int
    gid: int
    memory_mb: int
    cpus: float
    tmpfs_mb: int
    #: The workspace emptyDir's size limit in bytes (None: none).
    workspace_bytes: int | None
    network: bool
    read_only: bool = True
    cap_add: Sequence[str] = ()
    no_new_privileges: bool = True
    #: The labels that select this backend's Pod alone (its Service's selector).
    selector: Mapping[str, str] = field(default_factory=dict)
    #: Where the workspace (an emptyDir of ``workspace_bytes``) and the packages
    #: installed at run time (an emptyDir) are mounted.
    workspace_path: str = "/workspace"
    packages_path: str = "/packages"
    placement: Placement = field(default_factory=Placement)
    grace_seconds: int = GRACE_SECONDS
    #: The nftables ruleset the pod's init container installs (``kube_firewall``);
    #: None: no init container (a pod with network, or the operator's choice).
    firewall: str | None = None
    #: More files in the pod's Secret (mounted with the token's digest), by key: what
    #: must stay out of the pod's spec (an allow-list backend's ``WORKER_ENV_FILE``).
    secret_files: Mapping[str, str] = field(default_factory=dict)
    #: An allow-list backend's: the egress proxy pods' labels (its NetworkPolicy lets
    #: it reach them on ``egress_port`` only), and its trust bundle's ConfigMap.
    egress_to: Mapping[str, str] | None = None
    egress_port: int = 3128
    trust_config_map: str | None = None
    trust_path: str = "/run/beephost-egress-trust"
    #: No DNS server at all (a loopback one that is not there): names are the
    #: proxy's to resolve.
    no_dns: bool = False


def label_value(value: str) -> str | None:
    """``value`` if Kubernetes takes it as a label value, else None (an annotation
    keeps it)."""
    return value if len(value) <= 63 and _LABEL_VALUE.fullmatch(value) else None


def owner_reference(pod_name: str, pod_uid: str) -> Manifest:
    """Makes an object the Pod's: the garbage collector deletes it with the Pod."""
    return {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod_uid}


def _metadata(plan: PodPlan, owner: Manifest | None = None) -> Manifest:
    meta: Manifest = {
        "name": plan.name,
        "namespace": plan.namespace,
        "labels": dict(plan.labels),
        "annotations": dict(plan.annotations),
    }
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return meta


def pod(plan: PodPlan) -> Manifest:
    """The backend's Pod."""
    limits = {"cpu": f"{round(plan.cpus * 1000)}m", "memory": f"{plan.memory_mb}Mi"}
    cpu_request = max(1, round(plan.cpus * 1000 * plan.placement.cpu_request_ratio))
    requests = {"cpu": f"{cpu_request}m", "memory": f"{plan.memory_mb}Mi"}
    volumes: list[Manifest] = [
        {
            "name": "tmp",
            "emptyDir": {"medium": "Memory", "sizeLimit": f"{plan.tmpfs_mb}Mi"},
        },
        {"name": "token", "secret": {"secretName": plan.name, "defaultMode": 0o440}},
    ]
    mounts: list[Manifest] = [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "token", "mountPath": TOKEN_DIR, "readOnly": True},
    ]
    if plan.trust_config_map is not None:
        volumes.append({"name": "trust", "configMap": {"name": plan.trust_config_map}})
        mounts.append({"name": "trust", "mountPath": plan.trust_path, "readOnly": True})
    workspace: Manifest = {}
    if plan.workspace_bytes:
        # The kubelet evicts the pod past it; the server refuses uploads before.
        workspace["sizeLimit"] = str(plan.workspace_bytes)
    volumes += [
        {"name": "workspace", "emptyDir": workspace},
        {"name": "packages", "emptyDir": {}},
    ]
    mounts += [
        {"name": "workspace", "mountPath": plan.workspace_path},
        {"name": "packages", "mountPath": plan.packages_path},
    ]
    environment = [
        {"name": key, "value": value} for key, value in sorted(plan.environment.items())
    ]
    environment.append(
        {"name": plan.token_file_setting, "value": f"{TOKEN_DIR}/{TOKEN_KEY}"}
    )
    container: Manifest = {
        "name": CONTAINER,
        "image": plan.image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(plan.command),
        "env": environment,
        "ports": [{"name": "api", "containerPort": plan.port, "protocol": "TCP"}],
        "resources": {"limits": limits, "requests": requests},
        "securityContext": {
            "runAsNonRoot": plan.uid != 0,
            "runAsUser": plan.uid,
            "runAsGroup": plan.gid,
            "privileged": False,
            "allowPrivilegeEscalation": not plan.no_new_privileges,
            "readOnlyRootFilesystem": plan.read_only,
            "capabilities": {"drop": ["ALL"], "add": list(plan.cap_add)},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
        "readinessProbe": _probe(plan, ready=True),
        "livenessProbe": _probe(plan, ready=False),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if not container["securityContext"]["capabilities"]["add"]:
        del container["securityContext"]["capabilities"]["add"]
    spec: Manifest = {
        "containers": [container],
        **_init_containers(plan),
        "restartPolicy": "OnFailure",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": plan.grace_seconds,
        "securityContext": {
            "runAsNonRoot": plan.uid != 0,
            "runAsUser": plan.uid,
            "runAsGroup": plan.gid,
            "fsGroup": plan.gid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumes": volumes,
    }
    if plan.no_dns:
        spec |= {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["127.0.0.1"]}}
    spec |= _placement(plan.placement)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(plan),
        "spec": spec,
    }


def _init_containers(plan: PodPlan) -> Manifest:
    if plan.firewall is None:
        return {}
    return {"initContainers": [init_container(plan.image, plan.firewall)]}


def _probe(plan: PodPlan, *, ready: bool) -> Manifest:
    timing: Manifest = (
        {"periodSeconds": 1, "timeoutSeconds": 2, "failureThreshold": 3}
        if ready
        else {"periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
    )
    if plan.probe == "http":
        path = "/ready" if ready else "/health"
        return {"httpGet": {"path": path, "port": "api"}} | timing
    if plan.probe == "grpc":
        return {"grpc": {"port": plan.port}} | timing
    return {"exec": {"command": list(plan.healthcheck)}} | timing


def _placement(placement: Placement) -> Manifest:
    spec: Manifest = {}
    if placement.runtime_class:
        spec["runtimeClassName"] = placement.runtime_class
    if placement.node_selector:
        spec["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        spec["tolerations"] = [dict(t) for t in placement.tolerations]
    if placement.affinity:
        spec["affinity"] = dict(placement.affinity)
    if placement.topology_spread:
        spec["topologySpreadConstraints"] = [dict(t) for t in placement.topology_spread]
    if placement.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in placement.image_pull_secrets]
    return spec


def service(plan: PodPlan, owner: Manifest | None = None) -> Manifest:
    """A ClusterIP Service in front of the Pod: its address outlives the Pod's IP."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(plan, owner),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(plan.selector),
            "ports": [
                {
                    "name": "api",
                    "port": plan.port,
                    "targetPort": "api",
                    "protocol": "TCP",
                }
            ],
        },
    }


def token_secret(plan: PodPlan, owner: Manifest | None = None) -> Manifest:
    """The Secret the Pod mounts its token's digest from."""
    files = {TOKEN_KEY: plan.token_sha256, **plan.secret_files}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(plan, owner),
        "type": "Opaque",
        "data": {
            key: base64.b64encode(value.encode()).decode()
            for key, value in files.items()
        },
    }


def network_policy(
    plan: PodPlan, owner: Manifest | None = None, ingress_from: Sequence[Manifest] = ()
) -> Manifest:
    """For a backend without network: no egress at all (no DNS either) but, for an
    allow-list backend, to the egress proxy's pods; ingress on its port only (from
    ``ingress_from`` peers, or anyone)."""
    rule: Manifest = {"ports": [{"protocol": "TCP", "port": plan.port}]}
    if ingress_from:
        rule["from"] = [dict(peer) for peer in ingress_from]
    egress: list[Manifest] = []
    if plan.egress_to is not None:
        egress.append(
            {
                "to": [{"podSelector": {"matchLabels": dict(plan.egress_to)}}],
                "ports": [{"protocol": "TCP", "port": plan.egress_port}],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(plan, owner),
        "spec": {
            "podSelector": {"matchLabels": dict(plan.selector)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [rule],
            "egress": egress,
        },
    }


#: What the controller does in the sandbox namespace, and nothing more.
ROLE_RULES: tuple[Manifest, ...] = (
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "delete", "get", "list", "watch"],
    },
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
    {
        "apiGroups": [""],
        "resources": ["services", "secrets"],
        "verbs": ["create", "delete", "get", "list"],
    },
    {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": ["create", "delete", "get", "list"],
    },
    # A backend's memory in use (the console), where metrics-server runs.
    {"apiGroups": ["metrics.k8s.io"], "resources": ["pods"], "verbs": ["get"]},
    # The egress proxy: its Deployment, trust bundle (a ConfigMap) and counters.
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["create", "delete", "get", "list"],
    },
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "verbs": ["create", "delete", "get", "list"],
    },
    {"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get"]},
)


def role(name: str, namespace: str, labels: Mapping[str, str]) -> Manifest:
    """The namespaced Role the controller needs (no cluster-wide right)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "rules": [dict(rule) for rule in ROLE_RULES],
    }


def role_binding(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    service_account: str,
    account_namespace: str,
) -> Manifest:
    """Binds the Role to the controller's service account (which may live in
    another namespace than the sandboxes)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": name,
        },
        "subjects": [
            {
                "kind": "ServiceAccount",
                "name": service_account,
                "namespace": account_namespace,
            }
        ],
    }
