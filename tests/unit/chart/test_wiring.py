"""Wiring the API server would accept but get wrong: selectors, named ports, names."""

import pytest

from tests.unit.chart.render import (
    CI_VALUES,
    COMPONENTS,
    ci_values,
    component,
    container,
    find,
    one,
    pods,
    render,
)


@pytest.mark.parametrize("values_file", CI_VALUES)
def test_services_select_their_pods_and_ports(values_file: str) -> None:
    docs = render(ci_values(values_file))
    services = find(docs, "Service")
    assert services
    for service in services:
        deployment = one(docs, "Deployment", component(service))
        template_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = service["spec"]["selector"]
        assert selector.items() <= template_labels.items(), service["metadata"]["name"]
        port_names = {p["name"] for p in container(deployment)["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, service["metadata"]["name"]


@pytest.mark.parametrize("values_file", CI_VALUES)
def test_deployment_selectors_match_their_templates(values_file: str) -> None:
    for deployment in find(render(ci_values(values_file)), "Deployment"):
        match = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert match.items() <= labels.items()
        assert match["app.kubernetes.io/component"] == component(deployment)


def test_selectors_do_not_overlap() -> None:
    # Each component's selector picks its own pods only.
    docs = render()
    selectors = [
        one(docs, "Deployment", c)["spec"]["selector"]["matchLabels"]
        for c in COMPONENTS
    ]
    for deployment in find(docs, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert sum(s.items() <= labels.items() for s in selectors) == 1


def test_names_follow_release_and_overrides() -> None:
    names = {d["metadata"]["name"] for d in find(render(), "Deployment")}
    assert names == {f"beephost-{c}" for c in COMPONENTS}
    docs = render({"fullnameOverride": "bh"})
    assert {d["metadata"]["name"] for d in find(docs, "Deployment")} == {
        f"bh-{c}" for c in COMPONENTS
    }
    assert one(docs, "Secret")["metadata"]["name"] == "bh-tokens"


@pytest.mark.parametrize("comp", COMPONENTS)
def test_default_resources_and_tmp(comp: str) -> None:
    deployment = one(render(), "Deployment", comp)
    assert container(deployment)["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "256Mi"}
    variables = {e["name"]: e.get("value") for e in container(deployment)["env"]}
    if comp == "controller":
        assert variables["HOME"] == "/tmp"
        return
    # A backend's user code lives in its workspace, on the node's disk, within its quota.
    assert variables["HOME"] == "/workspace"
    assert volumes["workspace"]["emptyDir"] == {"sizeLimit": 1 << 30}
    prefix = {"pipe-backend": "PIPE", "http-backend": "HTTP", "rpc-backend": "RPC"}[
        comp
    ]
    assert variables[f"BEEPHOST_{prefix}_BACKEND_WORKSPACE_DIR"] == "/workspace"
    assert variables[f"BEEPHOST_{prefix}_BACKEND_WORKER_CWD"] == "/workspace"
    assert variables[f"BEEPHOST_{prefix}_BACKEND_WORKSPACE_QUOTA_BYTES"] == str(1 << 30)
    mounts = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
    assert mounts["/workspace"] == "workspace"


def test_a_workspace_without_quota_has_no_size_limit() -> None:
    docs = render({"httpBackend": {"workspaceQuotaBytes": 0}})
    deployment = one(docs, "Deployment", "http-backend")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["workspace"]["emptyDir"] == {}


def test_common_labels_reach_every_object() -> None:
    for doc in render({"commonLabels": {"team": "platform"}}):
        assert doc["metadata"]["labels"]["team"] == "platform", doc["metadata"]["name"]


@pytest.mark.parametrize("values_file", CI_VALUES)
def test_volume_mounts_name_pod_volumes(values_file: str) -> None:
    for doc, spec in pods(render(ci_values(values_file))):
        volumes = {v["name"] for v in spec["volumes"]}
        for box in spec["containers"]:
            mounts = {m["name"] for m in box.get("volumeMounts", [])}
            assert mounts <= volumes, f"{doc['metadata']['name']}/{box['name']}"
