"""The controller: explicit Docker access, its token, its state, one replica."""

from typing import Any

from tests.unit.chart.render import (
    Manifest,
    ci_values,
    component,
    container,
    env,
    find,
    one,
    pod_spec,
    render,
)

DOCS = render()


def _controller(docs: list[Manifest]) -> Manifest:
    return one(docs, "Deployment", "controller")


def _volumes(deployment: Manifest) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_spec(deployment)["volumes"]}


def test_single_replica_recreated() -> None:
    deployment = _controller(DOCS)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_listens_on_every_interface_with_a_token() -> None:
    variables = env(container(_controller(DOCS)))
    assert variables["BEEPHOST_CONTROLLER_HOST"]["value"] == "0.0.0.0"
    assert variables["BEEPHOST_CONTROLLER_PORT"]["value"] == "8600"
    assert variables["HOME"]["value"] == "/tmp"
    ref = variables["BEEPHOST_CONTROLLER_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "beephost-tokens", "key": "controller-token"}


def test_no_docker_access_by_default() -> None:
    deployment = _controller(DOCS)
    variables = env(container(deployment))
    assert not {"DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"} & set(variables)
    assert set(_volumes(deployment)) == {"tmp", "data"}


def test_docker_host_is_explicit() -> None:
    docs = render({"controller": {"docker": {"host": "tcp://docker-dind:2375"}}})
    deployment = _controller(docs)
    variables = env(container(deployment))
    assert variables["DOCKER_HOST"]["value"] == "tcp://docker-dind:2375"
    assert "DOCKER_TLS_VERIFY" not in variables
    assert "docker-tls" not in _volumes(deployment)


def test_docker_tls_secret_is_mounted_read_only() -> None:
    docs = render(
        {
            "controller": {
                "docker": {"host": "tcp://docker-dind:2376", "tlsSecret": "dind-tls"}
            }
        }
    )
    deployment = _controller(docs)
    main = container(deployment)
    variables = env(main)
    assert variables["DOCKER_TLS_VERIFY"]["value"] == "1"
    assert variables["DOCKER_CERT_PATH"]["value"] == "/etc/beephost/docker-tls"
    assert _volumes(deployment)["docker-tls"]["secret"]["secretName"] == "dind-tls"
    (mount,) = [m for m in main["volumeMounts"] if m["name"] == "docker-tls"]
    assert mount == {
        "name": "docker-tls",
        "mountPath": "/etc/beephost/docker-tls",
        "readOnly": True,
    }


def test_a_ca_bundle_is_trusted_from_a_config_map() -> None:
    assert "BEEPHOST_CONTROLLER_CA_BUNDLE" not in env(container(_controller(DOCS)))
    docs = render(
        {"controller": {"caBundle": {"configMap": "corp-ca", "key": "bundle.pem"}}}
    )
    deployment = _controller(docs)
    main = container(deployment)
    variables = env(main)
    path = variables["BEEPHOST_CONTROLLER_CA_BUNDLE"]["value"]
    assert path == "/etc/beephost/ca-bundle/bundle.pem"
    assert _volumes(deployment)["ca-bundle"]["configMap"] == {
        "name": "corp-ca",
        "items": [{"key": "bundle.pem", "path": "bundle.pem"}],
    }
    (mount,) = [m for m in main["volumeMounts"] if m["name"] == "ca-bundle"]
    assert mount == {
        "name": "ca-bundle",
        "mountPath": "/etc/beephost/ca-bundle",
        "readOnly": True,
    }


def test_state_on_a_created_claim_by_default() -> None:
    deployment = _controller(DOCS)
    variables = env(container(deployment))
    assert variables["BEEPHOST_CONTROLLER_DATABASE"]["value"] == "/data/controller.db"
    claim = one(DOCS, "PersistentVolumeClaim", "controller")
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in claim["spec"]
    volume = _volumes(deployment)["data"]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


def test_existing_claim_is_used_not_created() -> None:
    docs = render(ci_values("full-values.yaml"))
    assert not find(docs, "PersistentVolumeClaim")
    volume = _volumes(_controller(docs))["data"]
    assert volume["persistentVolumeClaim"]["claimName"] == "beephost-controller-data"


def test_without_persistence_state_is_an_empty_dir() -> None:
    docs = render({"controller": {"persistence": {"enabled": False}}})
    assert not find(docs, "PersistentVolumeClaim")
    assert _volumes(_controller(docs))["data"] == {"name": "data", "emptyDir": {}}


def test_storage_class_dash_means_none() -> None:
    docs = render({"controller": {"persistence": {"storageClass": "-"}}})
    assert one(docs, "PersistentVolumeClaim")["spec"]["storageClassName"] == ""
    docs = render({"controller": {"persistence": {"storageClass": "fast"}}})
    assert one(docs, "PersistentVolumeClaim")["spec"]["storageClassName"] == "fast"


def test_service_account_without_token() -> None:
    account = one(DOCS, "ServiceAccount", "controller")
    assert account["automountServiceAccountToken"] is False
    spec = pod_spec(_controller(DOCS))
    assert spec["serviceAccountName"] == account["metadata"]["name"]


def test_backends_only_renders_no_controller_objects() -> None:
    docs = render(ci_values("backends-only-values.yaml"))
    assert docs
    assert [d["kind"] for d in docs if component(d) in ("controller", "test")] == []
    assert not find(docs, "Pod"), "the helm test needs the controller"
    assert {component(d) for d in find(docs, "Deployment")} == {
        "http-backend",
        "pipe-backend",
        "rpc-backend",
    }
    # The backends still need their tokens.
    assert one(docs, "Secret")["metadata"]["name"] == "beephost-tokens"


def test_test_pod_checks_the_controller_health() -> None:
    pod = one(DOCS, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    main = container(pod)
    assert main["command"][-1] == "http://beephost-controller:8600/health"
    assert main["image"] == container(_controller(DOCS))["image"]
