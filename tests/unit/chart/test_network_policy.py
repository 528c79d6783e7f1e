"""NetworkPolicy: backends (untrusted code) send nothing but DNS unless allowed."""

from typing import Any

import pytest

from tests.unit.chart.render import ci_values, component, find, one, render

BACKENDS = ("http-backend", "pipe-backend", "rpc-backend")
INGRESS_PORTS = {
    "controller": [8600],
    "http-backend": [5678],
    "pipe-backend": [9464],
    "rpc-backend": [50051, 9465],
}
DNS = {
    "to": [{"namespaceSelector": {}}],
    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
}
DOCS = render()


def _policy(docs: list[dict[str, Any]], comp: str) -> dict[str, Any]:
    spec: dict[str, Any] = one(docs, "NetworkPolicy", comp)["spec"]
    return spec


@pytest.mark.parametrize("comp", BACKENDS)
def test_backends_deny_egress_except_dns(comp: str) -> None:
    spec = _policy(DOCS, comp)
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["egress"] == [DNS]
    assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == comp


@pytest.mark.parametrize("comp", INGRESS_PORTS)
def test_ingress_only_on_the_component_ports(comp: str) -> None:
    (rule,) = _policy(DOCS, comp)["ingress"]
    assert [p["port"] for p in rule["ports"]] == INGRESS_PORTS[comp]
    assert "from" not in rule  # no ingressFrom: any peer (tokens still apply)


def test_controller_egress_stays_open() -> None:
    # The controller resolves packages and talks to its Docker host.
    spec = _policy(DOCS, "controller")
    assert spec["policyTypes"] == ["Ingress"]
    assert "egress" not in spec


def test_extra_egress_and_restricted_ingress() -> None:
    values = ci_values("full-values.yaml")
    docs = render(values)
    for comp in BACKENDS:
        spec = _policy(docs, comp)
        assert spec["egress"] == [DNS, *values["networkPolicy"]["backendEgress"]]
        (rule,) = spec["ingress"]
        peers = rule["from"]
        assert peers[0] == values["networkPolicy"]["ingressFrom"][0]
        # The release's own pods (helm test) stay allowed.
        assert peers[-1]["podSelector"]["matchLabels"] == {
            "app.kubernetes.io/name": "beephost",
            "app.kubernetes.io/instance": "beephost",
        }


def test_disabled_renders_none() -> None:
    assert not find(render({"networkPolicy": {"enabled": False}}), "NetworkPolicy")


def test_only_enabled_components_get_policies() -> None:
    docs = render(ci_values("backends-only-values.yaml"))
    assert {component(d) for d in find(docs, "NetworkPolicy")} == set(BACKENDS)
