"""`helm lint --strict` (helm_python.lint) passes for the defaults and every ci file."""

from typing import Any

import helm_python
import pytest

from tests.unit.chart.render import CHART_DIR, CI_VALUES, KUBE_VERSIONS, ci_values

WARNING = 2  # lint severities: 0 unknown, 1 info, 2 warning, 3 error


def _lint(values: dict[str, Any] | None, kube_version: str) -> dict[str, Any]:
    return helm_python.lint(
        CHART_DIR, values, strict=True, kube_version=f"v{kube_version}"
    )


def _problems(report: dict[str, Any]) -> list[str]:
    return [
        f"{m['path']}: {m['error']}"
        for m in report["messages"]
        if m["severity"] >= WARNING
    ] + list(report["errors"])


@pytest.mark.parametrize("kube_version", [KUBE_VERSIONS[0], KUBE_VERSIONS[-1]])
@pytest.mark.parametrize("values_file", CI_VALUES)
def test_lint_strict_passes(values_file: str, kube_version: str) -> None:
    report = _lint(ci_values(values_file), kube_version)
    assert report["total_charts_linted"] == 1
    assert _problems(report) == []


def test_lint_reports_schema_violations() -> None:
    # Lint runs the schema and the templates: a forbidden value is an error finding.
    report = _lint({"controller": {"replicaCount": 2}}, KUBE_VERSIONS[0])
    assert any("replicaCount" in problem for problem in _problems(report))
