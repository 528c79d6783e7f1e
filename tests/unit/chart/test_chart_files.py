"""The chart's files: metadata, documentation in sync with values, packaging, NOTES."""

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from tests.unit.chart.render import (
    CHART_DIR,
    CI_VALUES,
    ci_values,
    container,
    one,
    render,
    render_files,
)

SCHEMA: dict[str, Any] = json.loads((CHART_DIR / "values.schema.json").read_text())
DEFAULTS: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
TEMPLATES = {
    "_helpers.tpl", "NOTES.txt", "controller-deployment.yaml", "controller-service.yaml",
    "controller-serviceaccount.yaml", "controller-pvc.yaml", "controller-secret.yaml",
    "http-backend-deployment.yaml", "http-backend-service.yaml",
    "pipe-backend-deployment.yaml", "pipe-backend-service.yaml",
    "rpc-backend-deployment.yaml", "rpc-backend-service.yaml", "servicemonitor.yaml",
    "mcp-deployment.yaml", "mcp-service.yaml",
    "networkpolicy.yaml", "poddisruptionbudget.yaml", "tests/test-connection.yaml",
    "sandboxes-namespace.yaml", "sandboxes-role.yaml", "sandboxes-networkpolicy.yaml",
}  # fmt: skip


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[-1]]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _leaves(
    value: Any, node: dict[str, Any], path: str = ""
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Documented keys: recurse where the schema lists properties, else one leaf."""
    node = _resolve(node)
    if isinstance(value, dict) and value and "properties" in node:
        for key, sub in value.items():
            yield from _leaves(
                sub, node["properties"][key], f"{path}.{key}" if path else key
            )
    else:
        yield path, node


def test_chart_metadata() -> None:
    with helm_python.Chart.load(CHART_DIR) as chart:
        meta = chart.metadata
        assert chart.name == "beephost"
        assert chart.version == "0.1.0"
    assert meta["apiVersion"] == "v2"
    assert meta["type"] == "application"
    assert meta["appVersion"] == "0.1.0"
    assert meta["kubeVersion"] == ">=1.29.0-0"


def test_expected_templates_exist() -> None:
    found = {
        str(p.relative_to(CHART_DIR / "templates"))
        for p in (CHART_DIR / "templates").rglob("*")
        if p.is_file()
    }
    assert found == TEMPLATES


def test_ci_values_cover_the_required_cases() -> None:
    assert {
        "default-values.yaml",
        "backends-only-values.yaml",
        "full-values.yaml",
    } <= set(CI_VALUES)
    full = ci_values("full-values.yaml")
    assert full["metrics"]["serviceMonitor"]["enabled"] is True
    assert full["auth"]["existingSecret"]
    assert full["controller"]["persistence"]["existingClaim"]
    assert ci_values("backends-only-values.yaml")["controller"]["enabled"] is False


def test_every_value_is_described_and_in_the_readme() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    leaves = list(_leaves(DEFAULTS, SCHEMA))
    assert len(leaves) > 100
    missing = [path for path, _ in leaves if f"| `{path}` |" not in readme]
    assert missing == []
    undescribed = [path for path, node in leaves if not node.get("description")]
    assert undescribed == []


def test_readme_lists_no_stale_keys() -> None:
    documented = {
        line.split("`")[1]
        for line in (CHART_DIR / "README.md").read_text().splitlines()
        if line.startswith("| `") and "." in line.split("`")[1]
    }
    current = {path for path, _ in _leaves(DEFAULTS, SCHEMA)}
    assert documented - current == set()


def test_package(tmp_path: Path) -> None:
    archive = Path(helm_python.package(CHART_DIR, destination=tmp_path))
    assert archive.name == "beephost-0.1.0.tgz"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {
        "beephost/values.schema.json",
        "beephost/README.md",
        "beephost/ci/full-values.yaml",
    } <= names
    with helm_python.Chart.load(archive) as chart:
        assert chart.schema is not None
        assert chart.render({}, name="beephost", namespace="beephost")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "No Docker access"),
        (
            {"controller": {"docker": {"host": "tcp://dind:2376"}}},
            "DOCKER_HOST=tcp://dind:2376",
        ),
        (
            {"controller": {"persistence": {"enabled": False}}},
            "state lives in an emptyDir",
        ),
        ({"controller": {"enabled": False}}, "Pipe backend"),
    ],
)
def test_notes(values: dict[str, Any], expected: str) -> None:
    notes = render_files(values)["beephost/templates/NOTES.txt"]
    assert expected in notes
    assert "kubectl -n beephost get secret beephost-tokens" in notes


def test_pipe_sidecars_share_the_socket() -> None:
    docs = render(ci_values("full-values.yaml"))
    deployment = one(docs, "Deployment", "pipe-backend")
    sidecar = container(deployment, "client")
    assert {"name": "socket", "mountPath": "/run/beephost"} in sidecar["volumeMounts"]
    # Sidecars go through tpl: they can name the release's objects.
    (token,) = [e for e in sidecar["env"] if e["name"] == "BEEPHOST_PIPE_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"]["name"] == "beephost-tokens-external"
