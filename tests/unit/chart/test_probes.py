"""Probes: httpGet for the HTTP services, native gRPC for rpc, exec for the pipe."""

from typing import Any

import pytest

from tests.unit.chart.render import Manifest, container, one, render

DOCS = render()
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def _probes(comp: str) -> dict[str, dict[str, Any]]:
    main = container(one(DOCS, "Deployment", comp))
    return {kind: main[kind] for kind in PROBES}


def _port_number(deployment: Manifest, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (found,) = [
        p["containerPort"] for p in container(deployment)["ports"] if p["name"] == port
    ]
    assert isinstance(found, int)
    return found


@pytest.mark.parametrize(
    ("comp", "port"), [("controller", 8600), ("http-backend", 5678)]
)
def test_http_services_probe_health_and_ready(comp: str, port: int) -> None:
    deployment = one(DOCS, "Deployment", comp)
    probes = _probes(comp)
    paths = {kind: probe["httpGet"]["path"] for kind, probe in probes.items()}
    assert paths == {
        "startupProbe": "/health",
        "livenessProbe": "/health",
        "readinessProbe": "/ready",
    }
    for probe in probes.values():
        assert _port_number(deployment, probe["httpGet"]["port"]) == port


def test_rpc_backend_uses_native_grpc_probes() -> None:
    for kind, probe in _probes("rpc-backend").items():
        assert probe["grpc"] == {"port": 50051}, kind
        assert "httpGet" not in probe, kind
        assert "exec" not in probe, kind


def test_pipe_backend_uses_its_healthcheck_command() -> None:
    for kind, probe in _probes("pipe-backend").items():
        assert probe["exec"]["command"] == [
            "/opt/beephost/bin/beephost-pipe-backend",
            "healthcheck",
        ], kind


@pytest.mark.parametrize("comp", ["http-backend", "pipe-backend", "rpc-backend"])
def test_backends_get_time_to_start(comp: str) -> None:
    startup = _probes(comp)["startupProbe"]
    assert startup["failureThreshold"] == 30
    assert startup["periodSeconds"] == 2
    for kind in PROBES:
        assert "enabled" not in _probes(comp)[kind], "a values-only key leaked"


def test_probes_can_be_disabled_and_tuned() -> None:
    docs = render(
        {
            "rpcBackend": {
                "livenessProbe": {"enabled": False},
                "readinessProbe": {"periodSeconds": 7},
            }
        }
    )
    main = container(one(docs, "Deployment", "rpc-backend"))
    assert "livenessProbe" not in main
    assert main["readinessProbe"]["periodSeconds"] == 7
    assert main["readinessProbe"]["grpc"] == {"port": 50051}


@pytest.mark.parametrize("comp", ["http-backend", "pipe-backend", "rpc-backend"])
def test_backend_probes_need_no_token(comp: str) -> None:
    # A backend's container holds only its token's digest: /health and /ready, the
    # pipe server's ping and grpc.health.v1 are open, so no probe sends a token.
    for kind, probe in _probes(comp).items():
        assert "httpHeaders" not in probe.get("httpGet", {}), kind
        command = " ".join(probe.get("exec", {}).get("command", []))
        assert "token" not in command.lower(), kind
