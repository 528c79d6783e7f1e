"""values.schema.json: the defaults and the ci files pass; typos and wrong types fail.

Checked both through the chart (helm's own validator, as install runs it) and with
jsonschema directly (what editors see through the yaml-language-server header).
"""

import json
from typing import Any

import helm_python
import jsonschema
import pytest
import yaml

from tests.unit.chart.render import CHART_DIR, CI_VALUES, ci_values, render

SCHEMA: dict[str, Any] = json.loads((CHART_DIR / "values.schema.json").read_text())
DEFAULTS: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text())

#: (override, what the error must name): each must be rejected.
INVALID: list[tuple[dict[str, Any], str]] = [
    # Dynamic mode.
    ({"controller": {"engine": "podman"}}, "engine"),
    ({"controller": {"engine": "Kubernetes"}}, "engine"),
    ({"sandboxes": {"endpoint": "node-port"}}, "endpoint"),
    ({"sandboxes": {"namespace": "Sandboxes"}}, "namespace"),
    ({"sandboxes": {"namespace": "sandboxes-"}}, "namespace"),
    ({"sandboxes": {"namespace": "team.sandboxes"}}, "namespace"),
    ({"sandboxes": {"namespace": "s" * 64}}, "namespace"),
    ({"sandboxes": {"cpuRequestRatio": 1.5}}, "cpuRequestRatio"),
    ({"sandboxes": {"cpuRequestRatio": 0}}, "cpuRequestRatio"),
    ({"sandboxes": {"registry": "https://registry.example.com"}}, "registry"),
    ({"sandboxes": {"pullRegistry": "Registry.example.com"}}, "pullRegistry"),
    ({"sandboxes": {"imagePullSecrets": ["Bad_Name"]}}, "imagePullSecrets"),
    ({"sandboxes": {"poolSize": {"grpc": 1}}}, "grpc"),
    ({"sandboxes": {"poolSize": {"http": -1}}}, "http"),
    ({"sandboxes": {"ttl": -1}}, "ttl"),
    ({"sandboxes": {"idleTimeout": "1h"}}, "idleTimeout"),
    ({"sandboxes": {"ttl": 2592001}}, "ttl"),
    ({"sandboxes": {"restartLimit": 101}}, "restartLimit"),
    ({"sandboxes": {"createNamespace": "yes"}}, "createNamespace"),
    ({"sandboxes": {"registy": "registry.example.com"}}, "registy"),
    ({"sandboxes": {"runtimeClassName": "gVisor"}}, "runtimeClassName"),
    (
        {"sandboxes": {"topologySpreadConstraints": [{"maxSkew": 1}]}},
        "topologyKey",
    ),
    # The MCP server.
    ({"mcp": {"backendType": "grpc"}}, "backendType"),
    ({"mcp": {"poolSize": 65}}, "poolSize"),
    ({"mcp": {"environment": "My Env"}}, "environment"),
    ({"mcp": {"idleTimeout": 0}}, "idleTimeout"),
    ({"mcp": {"createEnvironment": "yes"}}, "createEnvironment"),
    ({"mcp": {"tokn": "x"}}, "tokn"),
    ({"auth": {"keys": {"mcp": ""}}}, "mcp"),
    ({"controller": {"replicas": 2}}, "replicas"),
    ({"httpBackend": {"imagee": {}}}, "imagee"),
    ({"rpcBackend": {"service": {"prot": 1}}}, "prot"),
    ({"pipeBackend": {"image": {"tga": "3.12"}}}, "tga"),
    ({"controler": {"enabled": True}}, "controler"),
    ({"controller": {"replicaCount": 2}}, "replicaCount"),
    ({"httpBackend": {"replicaCount": "two"}}, "replicaCount"),
    ({"rpcBackend": {"enabled": "yes"}}, "enabled"),
    ({"pipeBackend": {"service": {"metricsPort": 70000}}}, "metricsPort"),
    ({"controller": {"image": {"digest": "latest"}}}, "digest"),
    ({"controller": {"docker": {"host": "unix:///var/run/docker.sock"}}}, "host"),
    ({"controller": {"livenessProbe": {"successThreshold": 2}}}, "successThreshold"),
    ({"httpBackend": {"service": {"sessionAffinity": "Sticky"}}}, "sessionAffinity"),
    ({"rpcBackend": {"service": {"sessionAffinity": "clientip"}}}, "sessionAffinity"),
    # The pipe backend's clients share its pod: its (metrics) Service has no affinity.
    ({"pipeBackend": {"service": {"sessionAffinity": "ClientIP"}}}, "sessionAffinity"),
    (
        {
            "httpBackend": {
                "service": {
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": "1h"}}
                }
            }
        },
        "timeoutSeconds",
    ),
    (
        {
            "rpcBackend": {
                "service": {
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}
                }
            }
        },
        "timeoutSeconds",
    ),
    (
        {
            "rpcBackend": {
                "podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}
            }
        },
        "podDisruptionBudget",
    ),
    (
        {
            "httpBackend": {
                "podDisruptionBudget": {"minAvailable": "50%", "maxUnavailable": 0}
            }
        },
        "podDisruptionBudget",
    ),
    (
        {"pipeBackend": {"podDisruptionBudget": {"minAvailable": "half"}}},
        "minAvailable",
    ),
    (
        {"httpBackend": {"podDisruptionBudget": {"minAvailable": "150%"}}},
        "minAvailable",
    ),
    ({"rpcBackend": {"podDisruptionBudget": {"maxUnavailable": -1}}}, "maxUnavailable"),
    ({"httpBackend": {"podDisruptionBudget": {"enabled": "yes"}}}, "enabled"),
    ({"httpBackend": {"podDisruptionBudget": {"minAvaliable": 1}}}, "minAvaliable"),
    ({"pipeBackend": {"runtimeClassName": "gVisor"}}, "runtimeClassName"),
    (
        {
            "httpBackend": {
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone"}]
            }
        },
        "whenUnsatisfiable",
    ),
    (
        {
            "rpcBackend": {
                "topologySpreadConstraints": [
                    {"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "Never"}
                ]
            }
        },
        "whenUnsatisfiable",
    ),
    (
        {
            "pipeBackend": {
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologykey": "zone",
                        "topologyKey": "zone",
                        "whenUnsatisfiable": "DoNotSchedule",
                    }
                ]
            }
        },
        "topologykey",
    ),
]


def _merged(override: dict[str, Any]) -> dict[str, Any]:
    """The defaults with ``override`` deep-merged in (what helm validates)."""

    def merge(base: Any, top: Any) -> Any:
        if isinstance(base, dict) and isinstance(top, dict):
            return {
                k: merge(base.get(k), top[k]) if k in base else top[k] for k in top
            } | {k: v for k, v in base.items() if k not in top}
        return top

    merged: dict[str, Any] = merge(DEFAULTS, override)
    return merged


def test_schema_is_valid_draft7() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_values_yaml_points_editors_at_the_schema() -> None:
    first = (CHART_DIR / "values.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=values.schema.json"


def test_defaults_validate() -> None:
    jsonschema.validate(DEFAULTS, SCHEMA)
    with helm_python.Chart.load(CHART_DIR) as chart:
        chart.validate_schema({})
        chart.validate_schema(DEFAULTS)


@pytest.mark.parametrize("values_file", CI_VALUES)
def test_ci_values_validate(values_file: str) -> None:
    values = ci_values(values_file)
    jsonschema.validate(_merged(values), SCHEMA)
    with helm_python.Chart.load(CHART_DIR) as chart:
        chart.validate_schema(values)


@pytest.mark.parametrize(("override", "culprit"), INVALID)
def test_chart_rejects(override: dict[str, Any], culprit: str) -> None:
    with (
        helm_python.Chart.load(CHART_DIR) as chart,
        pytest.raises(helm_python.HelmValuesError, match=culprit),
    ):
        chart.validate_schema(override)


@pytest.mark.parametrize(("override", "culprit"), INVALID)
def test_jsonschema_rejects(override: dict[str, Any], culprit: str) -> None:
    errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(_merged(override)))
    assert errors, override
    assert any(
        culprit in error.message or culprit in error.absolute_path for error in errors
    ), [e.message for e in errors]


def test_render_refuses_invalid_values() -> None:
    # Install and upgrade validate too: a typo never reaches the cluster.
    with pytest.raises(helm_python.HelmValuesError, match="replicas"):
        render({"controller": {"replicas": 2}})


def test_component_blocks_share_one_shape() -> None:
    # STYLE R22: the component blocks have the same keys, plus a few of their own.
    shared = {
        "enabled", "replicaCount", "image", "command", "args", "extraEnv", "resources",
        "podSecurityContext", "securityContext", "livenessProbe", "readinessProbe",
        "startupProbe", "service", "tmpSizeLimit", "podAnnotations", "podLabels",
        "nodeSelector", "tolerations", "affinity", "priorityClassName",
        "terminationGracePeriodSeconds",
    }  # fmt: skip
    for block in ("controller", "httpBackend", "pipeBackend", "rpcBackend"):
        props = SCHEMA["properties"][block]
        assert props["additionalProperties"] is False, block
        assert shared <= set(props["properties"]), block
        assert shared <= set(DEFAULTS[block]), block
