"""Hardening: every pod the chart renders (Deployments, sidecars, the helm test pod)."""

import json
from typing import Any

import pytest

from tests.unit.chart.render import CI_VALUES, Manifest, ci_values, pods, render

CI_DOCS = {name: render(ci_values(name)) for name in CI_VALUES}


def _mounts_token(values_file: str, doc: Manifest) -> bool:
    """Only the controller's pod, with engine=kubernetes (the default), mounts its
    ServiceAccount's token: the engine calls the API server with it."""
    engine = ci_values(values_file).get("controller", {}).get("engine", "kubernetes")
    labels = doc["metadata"]["labels"]
    return bool(
        engine == "kubernetes"
        and labels.get("app.kubernetes.io/component") == "controller"
    )


def _effective(pod: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    """A container's setting, falling back to the pod's securityContext."""
    own = container.get("securityContext", {})
    return own[key] if key in own else pod.get("securityContext", {}).get(key)


def _all_containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = [
        *pod.get("initContainers", []),
        *pod["containers"],
    ]
    return containers


@pytest.mark.parametrize("values_file", CI_VALUES)
def test_every_pod_is_hardened(values_file: str) -> None:
    found = list(pods(CI_DOCS[values_file]))
    assert found
    for doc, pod in found:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        expected = _mounts_token(values_file, doc)
        assert pod["automountServiceAccountToken"] is expected, name
        assert pod["enableServiceLinks"] is False, name
        pod_context = pod["securityContext"]
        assert pod_context["runAsNonRoot"] is True, name
        assert pod_context["runAsUser"] == pod_context["runAsGroup"] == 10001, name
        assert pod_context["fsGroup"] == 10001, name
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in _all_containers(pod):
            where = f"{name} container {container['name']}"
            context = container["securityContext"]
            assert _effective(pod, container, "runAsNonRoot") is True, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context.get("privileged", False) is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert _effective(pod, container, "seccompProfile") == {
                "type": "RuntimeDefault"
            }, where
            limits = container["resources"]["limits"]
            assert {"cpu", "memory"} <= set(limits), where


@pytest.mark.parametrize("values_file", CI_VALUES)
def test_no_host_access(values_file: str) -> None:
    for doc, pod in pods(CI_DOCS[values_file]):
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        for volume in pod.get("volumes", []):
            assert "hostPath" not in volume, name
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(flag), f"{name}: {flag}"


@pytest.mark.parametrize("values_file", CI_VALUES)
def test_no_docker_socket_anywhere(values_file: str) -> None:
    text = json.dumps(CI_DOCS[values_file])
    assert "docker.sock" not in text
    assert "/var/run/docker" not in text


@pytest.mark.parametrize("values_file", CI_VALUES)
def test_writable_paths_are_bounded_empty_dirs(values_file: str) -> None:
    for doc, pod in pods(CI_DOCS[values_file]):
        volumes = {v["name"]: v for v in pod["volumes"]}
        tmp = volumes["tmp"]["emptyDir"]
        assert tmp["sizeLimit"], doc["metadata"]["name"]
        mounts = {
            m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]
        }
        assert mounts["/tmp"] == "tmp"


def _deployment(docs: list[Manifest], component: str) -> Manifest:
    (found,) = [
        d
        for d in docs
        if d["kind"] == "Deployment"
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return found


def test_pipe_backend_socket_dir_is_an_empty_dir() -> None:
    pod = _deployment(CI_DOCS["default-values.yaml"], "pipe-backend")["spec"][
        "template"
    ]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["socket"]["emptyDir"]["sizeLimit"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts == {
        "/tmp": "tmp",
        "/run/beephost": "socket",
        "/workspace": "workspace",
    }


def test_overriding_one_setting_keeps_the_others() -> None:
    # Values merge: loosening one key explicitly leaves the rest of the hardening.
    docs = render(
        {"httpBackend": {"securityContext": {"readOnlyRootFilesystem": False}}}
    )
    pod = _deployment(docs, "http-backend")["spec"]["template"]["spec"]
    context = pod["containers"][0]["securityContext"]
    assert context["readOnlyRootFilesystem"] is False
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
