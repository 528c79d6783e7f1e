"""A backend's Kubernetes objects: valid for 1.29 and 1.33 (strict), hardened as a
container is on Docker, the token only in a Secret, offline means no egress."""

import base64
import json
from dataclasses import replace
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from beephost_controller.engine import kube_manifests as km

DIGEST = "ab" * 32
PLAN = km.PodPlan(
    name="beephost-default-b-0123456789ab",
    namespace="sandboxes",
    image="127.0.0.1:5000/beephost/env@sha256:" + "cd" * 32,
    command=["/opt/servers/bin/python", "-m", "beephost_http_backend"],
    labels={
        "io.beephost.managed": "true",
        "io.beephost.controller": "default",
        "io.beephost.backend": "b-0123456789ab",
        "io.beephost.backend.type": "http",
    },
    annotations={"io.beephost.environment": "data"},
    environment={"BEEPHOST_HTTP_BACKEND_ENVIRONMENT": "data"},
    token_sha256=DIGEST,
    token_file_setting="BEEPHOST_HTTP_BACKEND_TOKEN_SHA256_FILE",
    port=8000,
    probe="http",
    healthcheck=[
        "/opt/servers/bin/python",
        "-m",
        "beephost_http_backend",
        "healthcheck",
    ],
    uid=10001,
    gid=10001,
    memory_mb=512,
    cpus=1.0,
    tmpfs_mb=64,
    workspace_bytes=1 << 30,
    network=False,
    selector={"io.beephost.backend": "b-0123456789ab"},
)
OWNER = km.owner_reference(PLAN.name, "7d0b5c8e-0000-4000-8000-000000000000")
VERSIONS = ("1.29.0", "1.33.0")


def _objects(plan: km.PodPlan) -> list[dict[str, Any]]:
    return [
        km.pod(plan),
        km.service(plan, OWNER),
        km.token_secret(plan, OWNER),
        km.network_policy(plan, OWNER),
        km.role("beephost-sandboxes", "sandboxes", {"io.beephost.managed": "true"}),
        km.role_binding(
            "beephost-sandboxes",
            "sandboxes",
            {"io.beephost.managed": "true"},
            "beephost-controller",
            "beephost",
        ),
    ]


PLACED = replace(
    PLAN,
    probe="grpc",
    placement=km.Placement(
        runtime_class="gvisor",
        node_selector={"sandbox": "yes"},
        tolerations=[{"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}],
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "zone", "operator": "In", "values": ["a"]}
                            ]
                        }
                    ]
                }
            }
        },
        topology_spread=[
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"io.beephost.managed": "true"}},
            }
        ],
        image_pull_secrets=["registry"],
    ),
)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("plan", [PLAN, PLACED, replace(PLAN, probe="exec")])
def test_every_object_validates_strictly(plan: km.PodPlan, version: str) -> None:
    for manifest in _objects(plan):
        kubernetes_validate.validate(manifest, version, strict=True)


def test_a_misspelt_field_fails_validation() -> None:
    # The check above can fail: a field Kubernetes does not know is refused.
    manifest = km.pod(PLAN)
    manifest["spec"]["containers"][0]["readOnlyRootFilesystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, VERSIONS[0], strict=True)


def test_the_pod_is_hardened() -> None:
    spec = km.pod(PLAN)["spec"]
    (container,) = spec["containers"]
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["privileged"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert container["resources"]["limits"] == {"cpu": "1000m", "memory": "512Mi"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["workspace"]["emptyDir"] == {"sizeLimit": str(1 << 30)}
    assert volumes["tmp"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}


def test_a_capability_given_back_is_the_only_one_added() -> None:
    pod = km.pod(replace(PLAN, cap_add=("NET_BIND_SERVICE",)))
    capabilities = pod["spec"]["containers"][0]["securityContext"]["capabilities"]
    assert capabilities == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}


def test_the_token_is_only_in_the_secret() -> None:
    pod = km.pod(PLAN)
    assert DIGEST not in json.dumps(pod)
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env[PLAN.token_file_setting] == f"{km.TOKEN_DIR}/{km.TOKEN_KEY}"
    secret = km.token_secret(PLAN, OWNER)
    assert base64.b64decode(secret["data"][km.TOKEN_KEY]).decode() == DIGEST
    assert secret["metadata"]["ownerReferences"] == [OWNER]


def test_offline_means_no_egress_and_ingress_on_the_port_only() -> None:
    policy = km.network_policy(PLAN, OWNER)["spec"]
    assert policy["podSelector"] == {"matchLabels": dict(PLAN.selector)}
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["egress"] == []
    assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": PLAN.port}]}]


def test_the_service_selects_this_backend_alone() -> None:
    spec = km.service(PLAN, OWNER)["spec"]
    assert spec["selector"] == {"io.beephost.backend": "b-0123456789ab"}
    assert spec["ports"][0]["port"] == PLAN.port


@pytest.mark.parametrize(
    ("probe", "key"), [("http", "httpGet"), ("grpc", "grpc"), ("exec", "exec")]
)
def test_probes_follow_the_kind(probe: km.ProbeKind, key: str) -> None:
    container = km.pod(replace(PLAN, probe=probe))["spec"]["containers"][0]
    assert key in container["readinessProbe"]
    assert key in container["livenessProbe"]


def test_the_role_grants_only_namespaced_verbs_it_uses() -> None:
    rules = km.role("r", "sandboxes", {})["rules"]
    granted = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert all("*" not in item for item in granted)
    assert ("", "pods/exec", "create") in granted
    assert not any(resource == "nodes" for _, resource, _ in granted)


@pytest.mark.parametrize(
    ("value", "kept"),
    [("data", True), ("a" * 63, True), ("a" * 64, False), ("env-", False), ("", True)],
)
def test_label_values_kubernetes_refuses_are_left_out(value: str, kept: bool) -> None:
    assert (km.label_value(value) == value) is kept
