"""Backends keep their endpoints across restarts on Kubernetes too: the chart's
backends sit behind Services (a name and port that outlive their pods), and the
controller, whose Docker host is not its pod, never probes its own loopback for a
free host port (it draws one, kept by the backend across restarts)."""

from tests.unit.chart.render import container, env, one, render

DOCS = render()


def test_the_controller_does_not_probe_its_pod_for_host_ports() -> None:
    variables = env(container(one(DOCS, "Deployment", "controller")))
    assert variables["BEEPHOST_CONTROLLER_CHOOSE_HOST_PORTS"]["value"] == "false"


def test_http_and_rpc_backends_have_a_stable_service() -> None:
    for component, port in (("http-backend", 5678), ("rpc-backend", 50051)):
        service = one(DOCS, "Service", component)
        ports = {published["port"] for published in service["spec"]["ports"]}
        assert port in ports, component
        assert service["spec"]["selector"], component
