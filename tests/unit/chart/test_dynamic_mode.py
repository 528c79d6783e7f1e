"""Dynamic mode: the controller starts backends (sandboxes) as pods.

With ``controller.engine=kubernetes`` (the default) the chart renders, in the sandbox
namespace, exactly the Role the engine needs, bound to the controller's ServiceAccount
(nothing cluster-wide), an ingress NetworkPolicy that lets the controller reach the
sandbox pods, the namespace itself (optional), and the engine's settings in the
controller's environment; only then is the controller's token mounted. With
``docker`` none of it renders. Pools and lifetimes map to the controller's existing
settings with either engine, and the defaults render a controller whose settings load.
"""

import json
import re
from typing import Any

import helm_python
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from beephost_controller.settings import Settings as ControllerSettings
from tests.unit.chart.render import (
    CHART_DIR,
    CI_VALUES,
    KUBE_VERSIONS,
    NAMESPACE,
    Manifest,
    ci_values,
    component,
    container,
    env,
    find,
    one,
    pod_spec,
    render,
    render_files,
)

HELM_DOC = CHART_DIR.parents[1] / "docs" / "operators" / "helm.md"
KUBERNETES = ci_values("kubernetes-values.yaml")
DOCKER = {"controller": {"engine": "docker"}}
DEFAULT_DOCS = render()
KUBERNETES_DOCS = render(KUBERNETES)
DOCKER_DOCS = render(DOCKER)
#: The Role's rules, as the Kubernetes engine's ROLE_RULES
#: (beephost_controller.engine.kube_manifests) spells them.
ROLE_RULES: list[dict[str, Any]] = [
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
]
#: The engine's settings whose values are JSON, and the sandboxes value of each.
JSON_SETTINGS = {
    "BEEPHOST_CONTROLLER_KUBERNETES_IMAGE_PULL_SECRETS": "imagePullSecrets",
    "BEEPHOST_CONTROLLER_KUBERNETES_NODE_SELECTOR": "nodeSelector",
    "BEEPHOST_CONTROLLER_KUBERNETES_TOLERATIONS": "tolerations",
    "BEEPHOST_CONTROLLER_KUBERNETES_AFFINITY": "affinity",
    "BEEPHOST_CONTROLLER_KUBERNETES_TOPOLOGY_SPREAD": "topologySpreadConstraints",
    "BEEPHOST_CONTROLLER_KUBERNETES_INGRESS_FROM": "ingressFrom",
}
#: The engine's plain settings, and the sandboxes value of each.
PLAIN_SETTINGS = {
    "BEEPHOST_CONTROLLER_KUBERNETES_NAMESPACE": "namespace",
    "BEEPHOST_CONTROLLER_KUBERNETES_REGISTRY": "registry",
    "BEEPHOST_CONTROLLER_KUBERNETES_PULL_REGISTRY": "pullRegistry",
    "BEEPHOST_CONTROLLER_KUBERNETES_ENDPOINT": "endpoint",
    "BEEPHOST_CONTROLLER_KUBERNETES_CLUSTER_DOMAIN": "clusterDomain",
    "BEEPHOST_CONTROLLER_KUBERNETES_RUNTIME_CLASS": "runtimeClassName",
}
# What the engine's settings accept (kube_settings.py): a namespace is a DNS-1123
# label, a registry host[:port][/path].
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_REGISTRY = re.compile(r"^[a-z0-9.-]+(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")


def _controller_env(docs: list[Manifest]) -> dict[str, dict[str, Any]]:
    return env(container(one(docs, "Deployment", "controller")))


def _in_sandboxes(docs: list[Manifest]) -> list[Manifest]:
    return [d for d in docs if component(d) == "sandboxes"]


# -- RBAC -------------------------------------------------------------------------------


def test_the_role_allows_exactly_what_the_engine_uses() -> None:
    role = one(DEFAULT_DOCS, "Role")
    assert role["metadata"]["namespace"] == "beephost-sandboxes"
    assert role["rules"] == ROLE_RULES


def test_the_binding_names_the_controller_account_in_the_release_namespace() -> None:
    for docs in (DEFAULT_DOCS, KUBERNETES_DOCS):
        role = one(docs, "Role")
        binding = one(docs, "RoleBinding")
        account = one(docs, "ServiceAccount", "controller")
        assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        }
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": account["metadata"]["name"],
                "namespace": NAMESPACE,
            }
        ]
        deployment = one(docs, "Deployment", "controller")
        assert pod_spec(deployment)["serviceAccountName"] == account["metadata"]["name"]


def test_an_existing_account_is_bound_by_name() -> None:
    docs = render({"controller": {"serviceAccount": {"create": False, "name": "ops"}}})
    assert not find(docs, "ServiceAccount")
    (subject,) = one(docs, "RoleBinding")["subjects"]
    assert subject == {"kind": "ServiceAccount", "name": "ops", "namespace": NAMESPACE}
    assert pod_spec(one(docs, "Deployment", "controller"))["serviceAccountName"] == (
        "ops"
    )


def test_the_default_account_is_never_bound() -> None:
    # Every pod of the namespace without an account of its own runs as "default",
    # the static backends (untrusted code) among them.
    with pytest.raises(helm_python.HelmError, match="never bound"):
        render_files({"controller": {"serviceAccount": {"create": False}}})
    docs = render(
        {"controller": {"engine": "docker", "serviceAccount": {"create": False}}}
    )
    assert not find(docs, "RoleBinding")


@pytest.mark.parametrize("values_file", CI_VALUES)
def test_nothing_cluster_wide(values_file: str) -> None:
    docs = render(ci_values(values_file))
    assert not [d["kind"] for d in docs if d["kind"].startswith("Cluster")]
    # Only the namespace itself is cluster-scoped, and only the installer creates it.
    for doc in docs:
        if doc["kind"] in ("Role", "RoleBinding"):
            assert doc["metadata"]["namespace"], doc["metadata"]["name"]


# -- the token ----------------------------------------------------------------------------


def test_the_token_is_mounted_only_with_the_kubernetes_engine() -> None:
    for docs, mounted in ((DEFAULT_DOCS, True), (KUBERNETES_DOCS, True)):
        spec = pod_spec(one(docs, "Deployment", "controller"))
        assert spec["automountServiceAccountToken"] is mounted
    spec = pod_spec(one(DOCKER_DOCS, "Deployment", "controller"))
    assert spec["automountServiceAccountToken"] is False
    # The account itself never hands its token to a pod that does not ask for it.
    for docs in (DEFAULT_DOCS, DOCKER_DOCS):
        account = one(docs, "ServiceAccount", "controller")
        assert account["automountServiceAccountToken"] is False
    # The backends never get one.
    for docs in (DEFAULT_DOCS, KUBERNETES_DOCS):
        for comp in ("http-backend", "pipe-backend", "rpc-backend"):
            spec = pod_spec(one(docs, "Deployment", comp))
            assert spec["automountServiceAccountToken"] is False, comp


def test_the_docker_engine_renders_no_sandbox_objects() -> None:
    assert _in_sandboxes(DOCKER_DOCS) == []
    assert not find(DOCKER_DOCS, "Role")
    variables = _controller_env(DOCKER_DOCS)
    assert variables["BEEPHOST_CONTROLLER_ENGINE"]["value"] == "docker"
    assert not [n for n in variables if n.startswith("BEEPHOST_CONTROLLER_KUBERNETES_")]


def test_without_the_controller_nothing_of_dynamic_mode_renders() -> None:
    docs = render(ci_values("backends-only-values.yaml"))
    assert _in_sandboxes(docs) == []


# -- the namespace ------------------------------------------------------------------------


def test_the_sandbox_namespace_defaults_to_the_release_namespace_and_a_suffix() -> None:
    namespace = one(DEFAULT_DOCS, "Namespace")
    assert namespace["metadata"]["name"] == f"{NAMESPACE}-sandboxes"
    for doc in _in_sandboxes(DEFAULT_DOCS):
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == f"{NAMESPACE}-sandboxes", doc["kind"]


def test_a_named_namespace_with_its_labels() -> None:
    namespace = one(KUBERNETES_DOCS, "Namespace")
    assert namespace["metadata"]["name"] == "beephost-sandboxes-prod"
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["app.kubernetes.io/component"] == "sandboxes"
    assert {d["kind"] for d in _in_sandboxes(KUBERNETES_DOCS)} == {
        "Namespace",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
    }


def test_an_existing_namespace_is_not_created() -> None:
    docs = render({"sandboxes": {"namespace": "sandboxes", "createNamespace": False}})
    assert not find(docs, "Namespace")
    assert one(docs, "Role")["metadata"]["namespace"] == "sandboxes"
    notes = render_files({"sandboxes": {"createNamespace": False}})[
        "beephost/templates/NOTES.txt"
    ]
    assert "(it must exist)" in notes


def test_the_release_namespace_is_never_rendered_again() -> None:
    docs = render({"sandboxes": {"namespace": NAMESPACE}})
    assert not find(docs, "Namespace")
    assert one(docs, "Role")["metadata"]["namespace"] == NAMESPACE
    notes = render_files({"sandboxes": {"namespace": NAMESPACE}})[
        "beephost/templates/NOTES.txt"
    ]
    assert "reaches its tokens Secret too" in notes


def test_a_derived_name_too_long_fails_instead_of_being_cut() -> None:
    with (
        helm_python.Chart.load(CHART_DIR) as chart,
        pytest.raises(helm_python.HelmError, match="longer than 63"),
    ):
        chart.render({}, name="beephost", namespace="n" * 60)


# -- the controller's settings ------------------------------------------------------------


def test_the_engine_settings_mirror_the_values() -> None:
    variables = _controller_env(KUBERNETES_DOCS)
    sandboxes = KUBERNETES["sandboxes"]
    assert variables["BEEPHOST_CONTROLLER_ENGINE"]["value"] == "kubernetes"
    for name, key in JSON_SETTINGS.items():
        assert json.loads(variables[name]["value"]) == sandboxes[key], name
    for name, key in PLAIN_SETTINGS.items():
        assert variables[name]["value"] == sandboxes[key], name
    ratio = variables["BEEPHOST_CONTROLLER_KUBERNETES_CPU_REQUEST_RATIO"]["value"]
    assert float(ratio) == sandboxes["cpuRequestRatio"]
    # In the cluster the controller uses its pod's service account.
    assert "BEEPHOST_CONTROLLER_KUBERNETES_KUBECONFIG" not in variables


def test_the_default_engine_settings_are_valid() -> None:
    variables = _controller_env(DEFAULT_DOCS)
    assert variables["BEEPHOST_CONTROLLER_ENGINE"]["value"] == "kubernetes"
    for name in JSON_SETTINGS:
        json.loads(variables[name]["value"])
    namespace = variables["BEEPHOST_CONTROLLER_KUBERNETES_NAMESPACE"]["value"]
    assert _NAMESPACE.fullmatch(namespace)
    assert variables["BEEPHOST_CONTROLLER_KUBERNETES_ENDPOINT"]["value"] == (
        "service-dns"
    )
    assert (
        0
        < float(variables["BEEPHOST_CONTROLLER_KUBERNETES_CPU_REQUEST_RATIO"]["value"])
        <= 1
    )
    # No registry by default: the setting is left unset (the controller's own default,
    # empty), never rendered empty or invented.
    assert "BEEPHOST_CONTROLLER_KUBERNETES_REGISTRY" not in variables
    assert "BEEPHOST_CONTROLLER_KUBERNETES_RUNTIME_CLASS" not in variables


def test_the_registries_have_the_engine_shape() -> None:
    variables = _controller_env(KUBERNETES_DOCS)
    for name in (
        "BEEPHOST_CONTROLLER_KUBERNETES_REGISTRY",
        "BEEPHOST_CONTROLLER_KUBERNETES_PULL_REGISTRY",
    ):
        assert _REGISTRY.fullmatch(variables[name]["value"]), name
    namespace = variables["BEEPHOST_CONTROLLER_KUBERNETES_NAMESPACE"]["value"]
    assert _NAMESPACE.fullmatch(namespace)


@pytest.mark.parametrize("values_file", CI_VALUES)
def test_every_json_setting_is_valid_json(values_file: str) -> None:
    docs = render(ci_values(values_file))
    for deployment in find(docs, "Deployment", "controller"):
        for name, entry in env(container(deployment)).items():
            if name in JSON_SETTINGS or name == "BEEPHOST_CONTROLLER_POOL_SIZE":
                json.loads(entry["value"])


def _loaded_settings(
    docs: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> ControllerSettings:
    """The controller's settings as its container's environment gives them."""
    for name, entry in _controller_env(docs).items():
        # Secrets are not rendered offline: any token will do.
        value = entry.get("value", "t" * 32)
        monkeypatch.setenv(name, value)
    return ControllerSettings()


@pytest.mark.parametrize("values_file", CI_VALUES)
def test_the_controller_settings_load(
    values_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The defaults (and every example) miss nothing the controller needs to start: it
    # starts and answers /ready, and refuses backend starts until a registry is set.
    docs = render(ci_values(values_file))
    if not find(docs, "Deployment", "controller"):
        return
    settings = _loaded_settings(docs, monkeypatch)
    assert settings.port == 8600


def test_pools_and_lifetimes_reach_the_controller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _loaded_settings(KUBERNETES_DOCS, monkeypatch)
    assert settings.pool_size == {"http": 2, "rpc": 1}
    assert settings.backend_ttl == 7200
    assert settings.backend_idle_timeout == 900
    assert settings.max_backends == 50
    assert settings.restart_limit == 3


def test_unset_lifetimes_leave_the_controller_defaults() -> None:
    variables = _controller_env(DEFAULT_DOCS)
    for name in ("POOL_SIZE", "BACKEND_TTL", "BACKEND_IDLE_TIMEOUT", "MAX_BACKENDS"):
        assert f"BEEPHOST_CONTROLLER_{name}" not in variables, name
    assert "BEEPHOST_CONTROLLER_RESTART_LIMIT" not in variables


def test_zero_means_no_limit_and_is_rendered() -> None:
    # 0 is a value (no lifetime, never idle, no cap), not "unset".
    docs = render({"sandboxes": {"ttl": 0, "idleTimeout": 0, "maxBackends": 0}})
    variables = _controller_env(docs)
    for name in ("BACKEND_TTL", "BACKEND_IDLE_TIMEOUT", "MAX_BACKENDS"):
        assert variables[f"BEEPHOST_CONTROLLER_{name}"]["value"] == "0", name


def test_large_values_are_plain_integers() -> None:
    # Helm's numbers are floats: 2592000 must not reach the controller as 2.592e+06.
    docs = render({"sandboxes": {"ttl": 2592000, "maxBackends": 1000000}})
    variables = _controller_env(docs)
    assert variables["BEEPHOST_CONTROLLER_BACKEND_TTL"]["value"] == "2592000"
    assert variables["BEEPHOST_CONTROLLER_MAX_BACKENDS"]["value"] == "1000000"


def test_pools_and_lifetimes_apply_to_the_docker_engine_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _loaded_settings(
        render(ci_values("docker-engine-values.yaml")), monkeypatch
    )
    assert settings.pool_size == {"http": 1}
    assert settings.backend_idle_timeout == 600


# -- the network --------------------------------------------------------------------------


def _sandbox_policy(docs: list[Manifest]) -> dict[str, Any]:
    spec: dict[str, Any] = one(docs, "NetworkPolicy", "sandboxes")["spec"]
    return spec


def test_the_controller_reaches_the_sandbox_pods() -> None:
    spec = _sandbox_policy(DEFAULT_DOCS)
    assert spec["podSelector"] == {"matchLabels": {"io.beephost.managed": "true"}}
    # Ingress only: a sandbox without network gets its deny-all-egress policy from
    # the controller; one with network keeps its egress.
    assert spec["policyTypes"] == ["Ingress"]
    controller_rule, clients_rule = spec["ingress"]
    (peer,) = controller_rule["from"]
    assert peer["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}
    }
    controller = one(DEFAULT_DOCS, "Deployment", "controller")
    labels = controller["spec"]["template"]["metadata"]["labels"]
    assert peer["podSelector"]["matchLabels"].items() <= labels.items()
    assert "ports" not in controller_rule
    # Clients: the API port only (the engine names it "api"), from anyone by default.
    assert clients_rule == {"ports": [{"port": "api", "protocol": "TCP"}]}


def test_restricted_client_ingress() -> None:
    (_, clients_rule) = _sandbox_policy(KUBERNETES_DOCS)["ingress"]
    assert clients_rule["from"] == KUBERNETES["sandboxes"]["ingressFrom"]
    assert clients_rule["ports"] == [{"port": "api", "protocol": "TCP"}]


def test_no_sandbox_policy_without_network_policies() -> None:
    docs = render({"networkPolicy": {"enabled": False}})
    assert not find(docs, "NetworkPolicy")
    assert one(docs, "Role")  # the rights stay


def test_the_controller_egress_stays_open() -> None:
    # Its own policy restricts ingress only: it reaches the API server, the registry,
    # its Docker host and the sandbox pods.
    spec = one(DEFAULT_DOCS, "NetworkPolicy", "controller")["spec"]
    assert spec["policyTypes"] == ["Ingress"]


# -- notes ----------------------------------------------------------------------------------


def test_notes_ask_for_a_registry_only_when_missing() -> None:
    notes = render_files({})["beephost/templates/NOTES.txt"]
    assert "No registry (sandboxes.registry is empty)" in notes
    assert 'Backends run as pods in the namespace "beephost-sandboxes"' in notes
    assert "No Docker access" in notes
    notes = render_files(KUBERNETES)["beephost/templates/NOTES.txt"]
    assert "No registry" not in notes
    assert "environment image builds, pushed to sandboxes.registry" in notes
    assert "from sandboxes.ingressFrom" in notes
    notes = render_files(DOCKER)["beephost/templates/NOTES.txt"]
    assert "Engine: kubernetes" not in notes
    assert "backend starts answer `unavailable`" in notes


# -- helm.md --------------------------------------------------------------------------------


def _section_values() -> list[dict[str, Any]]:
    """The YAML blocks of helm.md's section on dynamic mode."""
    text = HELM_DOC.read_text()
    section = text.split("\n## Dynamic mode", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```yaml\n(.*?)^```$", section, re.M | re.S)
    assert blocks, "helm.md has no values example of dynamic mode"
    return [yaml.safe_load(block) for block in blocks]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_helm_doc_examples_render_valid(version: str) -> None:
    for values in _section_values():
        docs = render(values)
        assert find(docs, "Deployment", "controller")
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)
