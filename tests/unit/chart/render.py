"""Render the beephost chart offline (helm_python) and parse what it renders.

Shared by the chart tests: no cluster, no helm binary. ``lookup`` returns nothing
offline, so the tokens Secret is always freshly generated here.
"""

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python
import yaml

REPO = Path(__file__).resolve().parents[3]
CHART_DIR = REPO / "charts" / "beephost"
CI_DIR = CHART_DIR / "ci"
#: The chart's example values files, by name (default, backends-only, minimal, full).
CI_VALUES = tuple(sorted(path.name for path in CI_DIR.glob("*-values.yaml")))
#: Kubernetes minor versions the manifests must validate against.
KUBE_VERSIONS = ("1.29.0", "1.30.0", "1.31.0", "1.32.0", "1.33.0")
RELEASE = "beephost"
NAMESPACE = "beephost"
#: app.kubernetes.io/component of each component's objects.
COMPONENTS = ("controller", "http-backend", "pipe-backend", "rpc-backend")

Manifest = dict[str, Any]


def ci_values(name: str) -> dict[str, Any]:
    """The values of ``ci/<name>`` (an empty file is ``{}``)."""
    loaded = yaml.safe_load((CI_DIR / name).read_text()) or {}
    assert isinstance(loaded, dict), name
    return loaded


def render_files(values: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Template path -> rendered text, as helm would install it."""
    with helm_python.Chart.load(CHART_DIR) as chart:
        return chart.render(dict(values or {}), name=RELEASE, namespace=NAMESPACE)


def render(values: Mapping[str, Any] | None = None) -> list[Manifest]:
    """Every non-empty manifest the chart renders (NOTES.txt excluded)."""
    docs: list[Manifest] = []
    for path, text in sorted(render_files(values).items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                assert isinstance(doc, dict), f"{path}: not a mapping"
                docs.append(doc)
    return docs


def component(doc: Manifest) -> str | None:
    labels: dict[str, str] = doc["metadata"].get("labels", {})
    return labels.get("app.kubernetes.io/component")


def find(docs: list[Manifest], kind: str, comp: str | None = None) -> list[Manifest]:
    """Objects of ``kind`` (and of component ``comp`` when given)."""
    return [
        d for d in docs if d["kind"] == kind and (comp is None or component(d) == comp)
    ]


def one(docs: list[Manifest], kind: str, comp: str | None = None) -> Manifest:
    found = find(docs, kind, comp)
    assert len(found) == 1, f"expected one {kind} {comp}, got {len(found)}"
    return found[0]


def pod_spec(doc: Manifest) -> dict[str, Any]:
    """The pod spec of a Deployment or a Pod."""
    spec: dict[str, Any] = (
        doc["spec"]["template"]["spec"] if doc["kind"] == "Deployment" else doc["spec"]
    )
    return spec


def pods(docs: list[Manifest]) -> Iterator[tuple[Manifest, dict[str, Any]]]:
    """(object, pod spec) of every Deployment and Pod."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "Pod"):
            yield doc, pod_spec(doc)


def container(doc: Manifest, name: str | None = None) -> dict[str, Any]:
    """The named container (default: the first, the component's own)."""
    containers: list[dict[str, Any]] = pod_spec(doc)["containers"]
    if name is None:
        return containers[0]
    (found,) = [c for c in containers if c["name"] == name]
    return found


def env(container_spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Env var name -> its EnvVar entry."""
    return {e["name"]: e for e in container_spec.get("env", [])}
