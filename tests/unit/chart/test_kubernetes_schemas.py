"""Every rendered manifest is a valid object of Kubernetes 1.29 to 1.33 (strict)."""

from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from tests.unit.chart.render import (
    CI_VALUES,
    KUBE_VERSIONS,
    Manifest,
    ci_values,
    render,
)

#: Custom resources the offline schemas cannot know; allowed only when enabled.
ALLOWED_CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def _service_monitors_enabled(values: dict[str, Any]) -> bool:
    return bool(values.get("metrics", {}).get("serviceMonitor", {}).get("enabled"))


def _validate(doc: Manifest, version: str, crds_allowed: bool) -> None:
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        assert crds_allowed, f"{name}: no schema for {doc['apiVersion']} {doc['kind']}"
        assert (doc["apiVersion"], doc["kind"]) in ALLOWED_CRDS, f"{name}: unknown kind"
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        pytest.fail(
            f"{name} is invalid for Kubernetes {version} at {path}: {exc.message}"
        )


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("values_file", CI_VALUES)
def test_manifests_validate(values_file: str, version: str) -> None:
    values = ci_values(values_file)
    docs = render(values)
    assert docs, "nothing rendered"
    for doc in docs:
        _validate(doc, version, _service_monitors_enabled(values))


def test_service_monitors_only_when_enabled() -> None:
    kinds = {d["kind"] for d in render()}
    assert "ServiceMonitor" not in kinds
    enabled = render({"metrics": {"serviceMonitor": {"enabled": True}}})
    assert {d["kind"] for d in enabled} >= {"ServiceMonitor"}


def test_unknown_kind_fails_validation() -> None:
    # The allow-list is what lets a CRD pass: without it, validation must fail.
    (monitor,) = [
        d
        for d in render({"metrics": {"serviceMonitor": {"enabled": True}}})
        if d["kind"] == "ServiceMonitor" and "controller" in d["metadata"]["name"]
    ]
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(monitor, KUBE_VERSIONS[0], strict=True)


def test_invalid_manifest_is_caught() -> None:
    # The validator is strict: a misspelt field in a rendered Deployment is an error.
    deployment = next(d for d in render() if d["kind"] == "Deployment")
    deployment["spec"]["replica"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[0], strict=True)
