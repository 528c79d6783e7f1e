"""The optional MCP server (``mcp``): absent by default; when enabled, a Deployment and
a Service hardened like the other components, the controller's image run as
beephost-mcp, probes on /health, its token and the controller's from the tokens
Secret, its settings valid for the server, and the network policies that let it in
and let it reach its sandboxes. Kubernetes validation (1.29 to 1.33) runs on
ci/full-values.yaml, which enables it (test_kubernetes_schemas.py)."""

import re
from typing import Any

import helm_python
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from beephost_mcp.settings import Settings as McpSettings
from tests.unit.chart.render import (
    CHART_DIR,
    KUBE_VERSIONS,
    ci_values,
    component,
    container,
    env,
    find,
    one,
    pod_spec,
    render,
)

ON = {"mcp": {"enabled": True}}
HELM_DOC = CHART_DIR.parents[1] / "docs" / "operators" / "helm.md"


def _mcp_objects(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if component(d) == "mcp"]


def test_absent_by_default() -> None:
    docs = render()
    assert _mcp_objects(docs) == []
    for policy in find(docs, "NetworkPolicy"):
        assert "mcp" not in str(policy)


def test_renders_a_deployment_and_a_service_when_enabled() -> None:
    docs = render(ON)
    kinds = sorted(d["kind"] for d in _mcp_objects(docs))
    assert kinds == ["Deployment", "NetworkPolicy", "Service"]
    deployment = one(docs, "Deployment", "mcp")
    main = container(deployment)
    assert main["image"] == container(one(docs, "Deployment", "controller"))["image"]
    assert main["command"] == ["/opt/beephost/bin/beephost-mcp"]
    assert main["ports"] == [{"name": "http", "containerPort": 8700, "protocol": "TCP"}]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert main[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    service = one(docs, "Service", "mcp")
    assert service["spec"]["ports"][0]["port"] == 8700
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert (
        service["spec"]["selector"] == (deployment["spec"]["selector"]["matchLabels"])
    )


def test_it_is_hardened() -> None:
    deployment = one(render(ON), "Deployment", "mcp")
    pod = pod_spec(deployment)
    context = container(deployment)["securityContext"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["runAsUser"] == 10001
    mounts = {m["mountPath"] for m in container(deployment)["volumeMounts"]}
    assert mounts == {"/tmp", "/var/lib/beephost"}
    assert all("emptyDir" in v for v in pod["volumes"])
    assert container(deployment)["resources"]["limits"]


def test_tokens_come_from_the_secret() -> None:
    docs = render(ON)
    variables = env(container(one(docs, "Deployment", "mcp")))
    secret = one(docs, "Secret")
    token = variables["BEEPHOST_MCP_TOKEN"]["valueFrom"]["secretKeyRef"]
    controller = variables["BEEPHOST_MCP_CONTROLLER_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": secret["metadata"]["name"], "key": "mcp-token"}
    assert controller == {"name": secret["metadata"]["name"], "key": "controller-token"}
    assert "mcp-token" in secret["data"]
    custom = render(
        ON | {"auth": {"existingSecret": "mine", "keys": {"mcp": "agents-token"}}}
    )
    variables = env(container(one(custom, "Deployment", "mcp")))
    assert variables["BEEPHOST_MCP_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "mine",
        "key": "agents-token",
    }
    assert find(custom, "Secret") == []


def test_its_settings_are_valid_for_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    for values in (ON, ci_values("full-values.yaml")):
        variables = env(container(one(render(values), "Deployment", "mcp")))
        for name, entry in variables.items():
            if name.startswith("BEEPHOST_MCP_"):
                # A token from the Secret: any long enough value stands for it here.
                value = entry.get("value", "a-token-from-the-secret-0123")
                monkeypatch.setenv(name, value)
        settings = McpSettings()
        assert settings.transport == "http"
        assert settings.controller_url == "http://beephost-controller:8600"
        assert settings.create_environment is True
    assert settings.environment_requirements == ["matplotlib==3.11.2"]
    assert settings.pool_size == 4
    assert settings.max_images == 2


def test_the_controller_url_and_its_absence() -> None:
    given = {"mcp": {"enabled": True, "controllerUrl": "https://ctl.example.com"}}
    variables = env(container(one(render(given), "Deployment", "mcp")))
    assert variables["BEEPHOST_MCP_CONTROLLER_URL"]["value"] == (
        "https://ctl.example.com"
    )
    without = {"mcp": {"enabled": True}, "controller": {"enabled": False}}
    with pytest.raises(helm_python.HelmError, match=r"mcp\.controllerUrl"):
        render(without)


def test_network_policies_let_clients_in_and_it_reach_its_sandboxes() -> None:
    docs = render(ON)
    own = one(docs, "NetworkPolicy", "mcp")
    assert own["spec"]["policyTypes"] == ["Ingress"]  # egress open: controller, pods
    assert own["spec"]["ingress"][0]["ports"] == [{"port": 8700, "protocol": "TCP"}]
    sandboxes = one(docs, "NetworkPolicy", "sandboxes")
    selectors = [
        peer["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        for rule in sandboxes["spec"]["ingress"]
        for peer in rule.get("from", [])
        if "podSelector" in peer
    ]
    assert "mcp" in selectors
    (rule,) = [
        r
        for r in sandboxes["spec"]["ingress"]
        if any(
            p.get("podSelector", {})
            .get("matchLabels", {})
            .get("app.kubernetes.io/component")
            == "mcp"
            for p in r.get("from", [])
        )
    ]
    assert rule["ports"] == [{"port": "api", "protocol": "TCP"}]


def test_placement_and_affinity_values_apply() -> None:
    docs = render(ci_values("full-values.yaml"))
    deployment = one(docs, "Deployment", "mcp")
    pod = pod_spec(deployment)
    assert deployment["spec"]["replicas"] == 2
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
        "mcp"
    )
    assert pod["priorityClassName"] == "sandbox"
    assert one(docs, "Service", "mcp")["spec"]["sessionAffinity"] == "ClientIP"


def _helm_doc_values() -> list[dict[str, Any]]:
    """The YAML blocks of helm.md's section on the MCP server."""
    text = HELM_DOC.read_text()
    section = text.split("\n## The MCP server", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```yaml\n(.*?)^```$", section, re.M | re.S)
    assert blocks, "helm.md has no values example of the MCP server"
    return [yaml.safe_load(block) for block in blocks]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_helm_doc_example_renders_valid(version: str) -> None:
    for values in _helm_doc_values():
        docs = render(values)
        assert one(docs, "Deployment", "mcp")
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)
