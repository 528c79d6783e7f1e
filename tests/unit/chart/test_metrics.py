"""Metrics: scrape annotations everywhere, ServiceMonitors on request."""

import pytest

from tests.unit.chart.render import (
    CI_VALUES,
    ci_values,
    component,
    find,
    one,
    pods,
    render,
)

METRICS_PORTS = {
    "controller": "8600",
    "http-backend": "5678",
    "pipe-backend": "9464",
    "rpc-backend": "9465",
}


@pytest.mark.parametrize("values_file", CI_VALUES)
def test_every_pod_template_and_service_is_annotated(values_file: str) -> None:
    docs = render(ci_values(values_file))
    annotated = [
        (doc, doc["spec"]["template"]["metadata"].get("annotations"))
        for doc, _ in pods(docs)
        if doc["kind"] == "Deployment"
    ] + [(doc, doc["metadata"].get("annotations")) for doc in find(docs, "Service")]
    assert annotated
    for doc, annotations in annotated:
        comp = component(doc)
        assert comp is not None
        if comp == "mcp":  # no /metrics: nothing to scrape
            assert "prometheus.io/scrape" not in (annotations or {})
            continue
        assert annotations["prometheus.io/scrape"] == "true", doc["metadata"]["name"]
        assert annotations["prometheus.io/port"] == METRICS_PORTS[comp]
        assert annotations["prometheus.io/path"] == "/metrics"


def test_metrics_env_binds_beyond_loopback() -> None:
    docs = render()
    for comp, prefix in (("pipe-backend", "PIPE"), ("rpc-backend", "RPC")):
        (main,) = one(docs, "Deployment", comp)["spec"]["template"]["spec"][
            "containers"
        ]
        variables = {e["name"]: e.get("value") for e in main["env"]}
        assert variables[f"BEEPHOST_{prefix}_BACKEND_METRICS_HOST"] == "0.0.0.0"
        assert (
            variables[f"BEEPHOST_{prefix}_BACKEND_METRICS_PORT"] == METRICS_PORTS[comp]
        )
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        assert str(ports["metrics"]) == METRICS_PORTS[comp]


def test_service_monitors_cover_enabled_components() -> None:
    docs = render(ci_values("full-values.yaml"))
    monitors = {component(d): d for d in find(docs, "ServiceMonitor")}
    assert set(monitors) == set(METRICS_PORTS)
    for comp, monitor in monitors.items():
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector["app.kubernetes.io/component"] == comp
        service = one(docs, "Service", comp)
        assert all(service["metadata"]["labels"][k] == v for k, v in selector.items())
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
        assert endpoint["interval"] == "15s"


def test_http_backend_metrics_carry_its_token() -> None:
    # The HTTP backend's /metrics needs the bearer token; the others are open.
    docs = render(ci_values("full-values.yaml"))
    monitors = {component(d): d for d in find(docs, "ServiceMonitor")}
    (endpoint,) = monitors["http-backend"]["spec"]["endpoints"]
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {
            "name": "beephost-tokens-external",
            "key": "http-backend-token",
        },
    }
    for comp in ("controller", "pipe-backend", "rpc-backend"):
        (endpoint,) = monitors[comp]["spec"]["endpoints"]
        assert "authorization" not in endpoint, comp


def test_service_monitors_skip_disabled_components() -> None:
    docs = render(
        {
            "metrics": {"serviceMonitor": {"enabled": True}},
            "controller": {"enabled": False},
        }
    )
    assert {component(d) for d in find(docs, "ServiceMonitor")} == {
        "http-backend",
        "pipe-backend",
        "rpc-backend",
    }


def test_pipe_service_exposes_only_metrics() -> None:
    service = one(render(), "Service", "pipe-backend")
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [
        ("metrics", 9464)
    ]
