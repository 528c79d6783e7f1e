"""The static backends' replicas: RuntimeClass, topology spread, disruption budgets and
session affinity, each absent by default and rendered when set; helm.md's example of
them renders into objects valid for every Kubernetes version the chart supports."""

import re
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.unit.chart.render import (
    KUBE_VERSIONS,
    REPO,
    ci_values,
    find,
    one,
    pod_spec,
    render,
)

#: values block -> app.kubernetes.io/component of the static backends.
BACKENDS = {
    "httpBackend": "http-backend",
    "pipeBackend": "pipe-backend",
    "rpcBackend": "rpc-backend",
}
#: The backends whose Service carries client traffic (the pipe's is metrics only).
NETWORK_BACKENDS = ("httpBackend", "rpcBackend")
HELM_DOC = REPO / "docs" / "operators" / "helm.md"
SPREAD = {
    "maxSkew": 1,
    "topologyKey": "kubernetes.io/hostname",
    "whenUnsatisfiable": "ScheduleAnyway",
}


def _budget(docs: list[dict[str, Any]], comp: str) -> dict[str, Any]:
    return one(docs, "PodDisruptionBudget", comp)


def test_every_backend_has_the_four_values() -> None:
    defaults = yaml.safe_load((REPO / "charts/beephost/values.yaml").read_text())
    for block in BACKENDS:
        assert defaults[block]["runtimeClassName"] == ""
        assert defaults[block]["topologySpreadConstraints"] == []
        assert defaults[block]["podDisruptionBudget"]["enabled"] is False
    for block in NETWORK_BACKENDS:
        assert defaults[block]["service"]["sessionAffinity"] == "None"


def test_nothing_by_default() -> None:
    docs = render()
    assert find(docs, "PodDisruptionBudget") == []
    for comp in BACKENDS.values():
        spec = pod_spec(one(docs, "Deployment", comp))
        assert "runtimeClassName" not in spec
        assert "topologySpreadConstraints" not in spec
        service = one(docs, "Service", comp)["spec"]
        assert "sessionAffinity" not in service
        assert "sessionAffinityConfig" not in service


@pytest.mark.parametrize("block", BACKENDS)
def test_runtime_class(block: str) -> None:
    docs = render({block: {"runtimeClassName": "gvisor"}})
    assert pod_spec(one(docs, "Deployment", BACKENDS[block]))["runtimeClassName"] == (
        "gvisor"
    )
    others = [c for b, c in BACKENDS.items() if b != block]
    assert all(
        "runtimeClassName" not in pod_spec(one(docs, "Deployment", c)) for c in others
    )


@pytest.mark.parametrize("block", BACKENDS)
def test_spread_defaults_to_the_component_selector(block: str) -> None:
    given = {
        "maxSkew": 2,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"tier": "sandbox"}},
    }
    with_keys = {**SPREAD, "matchLabelKeys": ["pod-template-hash"]}
    docs = render({block: {"topologySpreadConstraints": [with_keys, given]}})
    deployment = one(docs, "Deployment", BACKENDS[block])
    filled, kept = pod_spec(deployment)["topologySpreadConstraints"]
    # Omitted: the Deployment's own selector, so the replicas spread among themselves.
    assert filled == {**with_keys, "labelSelector": deployment["spec"]["selector"]}
    assert kept == given


@pytest.mark.parametrize("block", BACKENDS)
@pytest.mark.parametrize(
    ("budget", "spec"),
    [
        ({"minAvailable": 1}, {"minAvailable": 1}),
        ({"minAvailable": "50%"}, {"minAvailable": "50%"}),
        ({"maxUnavailable": 2}, {"maxUnavailable": 2}),
        ({"maxUnavailable": 0}, {"maxUnavailable": 0}),  # 0 is a number, not unset
        ({}, {"maxUnavailable": 1}),  # neither: one pod at a time
    ],
)
def test_disruption_budget(
    block: str, budget: dict[str, Any], spec: dict[str, Any]
) -> None:
    comp = BACKENDS[block]
    docs = render(
        {block: {"replicaCount": 3, "podDisruptionBudget": {"enabled": True, **budget}}}
    )
    pdb = _budget(docs, comp)
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["metadata"]["name"] == f"beephost-{comp}"
    assert {k: v for k, v in pdb["spec"].items() if k != "selector"} == spec
    # It counts exactly the Deployment's pods.
    assert pdb["spec"]["selector"] == one(docs, "Deployment", comp)["spec"]["selector"]
    assert len(find(docs, "PodDisruptionBudget")) == 1
    for version in (KUBE_VERSIONS[0], KUBE_VERSIONS[-1]):
        kubernetes_validate.validate(pdb, version, strict=True)


def test_no_budget_for_a_disabled_backend() -> None:
    docs = render(
        {"rpcBackend": {"enabled": False, "podDisruptionBudget": {"enabled": True}}}
    )
    assert find(docs, "PodDisruptionBudget") == []


@pytest.mark.parametrize("block", NETWORK_BACKENDS)
def test_client_ip_affinity(block: str) -> None:
    docs = render({block: {"service": {"sessionAffinity": "ClientIP"}}})
    service = one(docs, "Service", BACKENDS[block])
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    assert service["spec"]["sessionAffinityConfig"] == {
        "clientIP": {"timeoutSeconds": 10800}
    }
    timed = render(
        {
            block: {
                "service": {
                    "sessionAffinity": "ClientIP",
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 900}},
                }
            }
        }
    )
    config = one(timed, "Service", BACKENDS[block])["spec"]["sessionAffinityConfig"]
    assert config == {"clientIP": {"timeoutSeconds": 900}}
    # None, said explicitly, renders nothing either (Kubernetes' default).
    none = render({block: {"service": {"sessionAffinity": "None"}}})
    assert "sessionAffinity" not in one(none, "Service", BACKENDS[block])["spec"]


def test_full_values_exercise_all_four() -> None:
    # test_kubernetes_schemas validates these manifests for every KUBE_VERSIONS.
    docs = render(ci_values("full-values.yaml"))
    for comp in BACKENDS.values():
        spec = pod_spec(one(docs, "Deployment", comp))
        assert spec["runtimeClassName"]
        assert spec["topologySpreadConstraints"]
        assert _budget(docs, comp)["spec"]["selector"]
    spreads = [
        c
        for comp in BACKENDS.values()
        for c in pod_spec(one(docs, "Deployment", comp))["topologySpreadConstraints"]
    ]
    assert any("matchLabelKeys" in c for c in spreads)
    assert {k for c in spreads for k in c} >= {"minDomains", "nodeTaintsPolicy"}
    budgets = [_budget(docs, c)["spec"] for c in BACKENDS.values()]
    assert {k for b in budgets for k in b} >= {"minAvailable", "maxUnavailable"}
    assert any(
        isinstance(v, str) and v.endswith("%") for b in budgets for v in b.values()
    )
    for block in NETWORK_BACKENDS:
        assert one(docs, "Service", BACKENDS[block])["spec"]["sessionAffinity"] == (
            "ClientIP"
        )


def _section_values() -> list[dict[str, Any]]:
    """The YAML blocks of helm.md's section on several replicas."""
    text = HELM_DOC.read_text()
    section = text.split("\n## Several replicas", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```yaml\n(.*?)^```$", section, re.M | re.S)
    assert blocks, "helm.md has no values example of several replicas"
    return [yaml.safe_load(block) for block in blocks]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_helm_doc_example_renders_valid(version: str) -> None:
    for values in _section_values():
        docs = render(values)
        kinds = {d["kind"] for d in docs}
        assert "PodDisruptionBudget" in kinds
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)
