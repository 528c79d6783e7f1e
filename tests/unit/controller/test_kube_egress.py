"""KubeEgress's logic on an in-memory API (testing/kube.py): the proxy's objects made
once, its configuration delivered into each ready pod on stdin (never an object, never
an argument), again into a pod Kubernetes starts anew, a new image replacing the
Deployment but not the CA. The real cluster: tests/cluster/test_kube_egress.py."""

import base64
import hashlib
import json
from pathlib import Path

import pytest

from beephost_controller import egress_ca
from beephost_controller.engine import kube_egress
from beephost_controller.engine import kube_egress_manifests as kem
from beephost_controller.engine.kube_egress import KubeEgress
from beephost_controller.kube_settings import KubernetesSettings
from beephost_controller.ports import ContainerEngineError
from beephost_controller.schemas.egress import EgressRule, SecretHeader
from beephost_controller.secret_store import SecretStore
from beephost_controller.settings import Settings
from beephost_controller.testing import Exec, MemoryImageBuilder, MemoryKubeApi
from beephost_protocol.errors import Unavailable

DIGEST = "a" * 64
SECRET = "sk-live-0123456789"
ALLOW = [
    EgressRule(host="api.allowed.test", secret=SecretHeader(secret="weather-key")),
    EgressRule(host="other.test"),
]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _egress(
    tmp_path: Path,
    api: MemoryKubeApi,
    clock: Clock | None = None,
    images: MemoryImageBuilder | None = None,
) -> tuple[KubeEgress, MemoryImageBuilder]:
    store = SecretStore(tmp_path / "secrets")
    store.put("weather-key", SECRET)
    images = images or MemoryImageBuilder()

    def publish(tag: str) -> str:
        # A digest of the tag: another image, another reference.
        digest = hashlib.sha256(tag.encode()).hexdigest()
        return f"r.example:5000/ctl/egress-proxy@sha256:{digest}"

    egress = KubeEgress(
        Settings(name="ctl"),
        KubernetesSettings(namespace="sandboxes", registry="r.example:5000"),
        api,
        images,
        publish,
        store,
        addresses=lambda: ["10.244.0.9"],
        clock=clock or Clock(),
    )
    return egress, images


def _writes(api: MemoryKubeApi) -> list[Exec]:
    return [e for e in api.execs if kem.CONFIG_PATH in e.command]


def _written(call: Exec) -> dict[str, object]:
    assert call.stdin is not None
    assert call.command[-1] == str(len(call.stdin))  # the length, never the content
    loaded: dict[str, object] = json.loads(call.stdin)
    return loaded


def test_ensure_makes_the_proxy_and_configures_its_pod(tmp_path: Path) -> None:
    api = MemoryKubeApi()
    egress, _ = _egress(tmp_path, api)
    egress.ensure()
    kinds = sorted(kind for kind, _ in api.objects)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "Pod",
        "Secret",
        "Service",
    ]
    ca = api.objects[("Secret", "beephost-ctl-egress-ca")]
    cert = base64.b64decode(ca["data"][egress_ca.CA_CERT_FILE])
    bundle = api.objects[("ConfigMap", "beephost-ctl-egress-trust")]["data"]
    assert bundle[kem.BUNDLE_KEY].endswith(cert.decode())
    (write,) = _writes(api)
    assert write.container == kem.CONTAINER
    assert _written(write)["backends"] == {}
    assert _written(write)["blocked"] == ["10.244.0.9/32"]
    assert (
        egress.address() == api.objects[("Service", egress.name)]["spec"]["clusterIP"]
    )
    egress.ensure()  # ready: nothing made again
    assert len(_writes(api)) == 1


def test_register_delivers_the_secret_on_stdin_only(tmp_path: Path) -> None:
    api = MemoryKubeApi()
    egress, _ = _egress(tmp_path, api)
    egress.ensure()
    egress.registry.register("b-1", DIGEST, ALLOW)
    last = _writes(api)[-1]
    config = _written(last)
    assert config["secrets"] == {"weather-key": SECRET}
    assert set(config["backends"]) == {"b-1"}  # type: ignore[call-overload]
    assert SECRET not in json.dumps([call.command for call in api.execs])
    assert SECRET not in json.dumps(list(api.objects.values()))
    egress.registry.unregister("b-1")
    assert _written(_writes(api)[-1])["backends"] == {}


def test_a_proxy_pod_started_again_is_configured_by_sync(tmp_path: Path) -> None:
    api = MemoryKubeApi()
    clock = Clock()
    egress, _ = _egress(tmp_path, api, clock)
    egress.ensure()
    egress.registry.register("b-1", DIGEST, ALLOW)
    (old,) = api.list("Pod", egress.labels)
    del api.objects[("Pod", old["metadata"]["name"])]
    new = api.start_pod(api.objects[("Deployment", egress.name)])
    clock.now += kube_egress.SYNC_INTERVAL
    egress.sync()
    last = _writes(api)[-1]
    assert last.pod == new["metadata"]["name"]
    assert set(_written(last)["backends"]) == {"b-1"}  # type: ignore[call-overload]
    writes = len(_writes(api))
    egress.sync()  # too soon, and it holds the configuration anyway
    clock.now += kube_egress.SYNC_INTERVAL
    egress.sync()
    assert len(_writes(api)) == writes


def test_a_proxy_deleted_by_hand_is_made_again_by_the_next_start(
    tmp_path: Path,
) -> None:
    api = MemoryKubeApi()
    clock = Clock()
    egress, _ = _egress(tmp_path, api, clock)
    egress.ensure()
    api.delete("Deployment", egress.name)
    clock.now += kube_egress.SYNC_INTERVAL
    egress.sync()
    egress.ensure()
    assert api.get("Deployment", egress.name) is not None
    assert api.list("Pod", egress.labels)


def test_a_pod_that_takes_no_configuration_fails_the_registration(
    tmp_path: Path,
) -> None:
    api = MemoryKubeApi()
    egress, _ = _egress(tmp_path, api)
    egress.ensure()
    api.answer = lambda call: (1, "read-only file system")
    with pytest.raises(ContainerEngineError, match="could not be written"):
        egress.registry.register("b-1", DIGEST, ALLOW)


def test_a_new_image_replaces_the_deployment_and_keeps_the_ca(tmp_path: Path) -> None:
    api = MemoryKubeApi()
    egress, images = _egress(tmp_path, api)
    egress.ensure()
    ca = api.objects[("Secret", "beephost-ctl-egress-ca")]
    first = api.objects[("Deployment", egress.name)]["metadata"]["uid"]
    images.egress_proxy_tag = "beephost/egress-proxy:3.11-new"
    again, _ = _egress(tmp_path, api, images=images)  # started again, new code
    again.ensure()
    assert api.objects[("Deployment", egress.name)]["metadata"]["uid"] != first
    assert api.objects[("Secret", "beephost-ctl-egress-ca")] == ca


def test_no_builder_or_no_ready_pod_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = MemoryKubeApi(pods_ready=False)
    egress, _ = _egress(tmp_path, api)
    egress.images = None
    with pytest.raises(Unavailable, match="builds no images"):
        egress.ensure()
    egress, _ = _egress(tmp_path, api)
    monkeypatch.setattr(kube_egress, "READY_WAIT", 0.0)
    with pytest.raises(Unavailable, match="no ready pod") as caught:
        egress.ensure()
    assert "Unschedulable: 0/1 nodes are available: 1 Insufficient cpu" in str(
        caught.value
    )


def test_refusals_and_counts_gather_every_proxy_pod(tmp_path: Path) -> None:
    api = MemoryKubeApi()
    egress, _ = _egress(tmp_path, api)
    egress.ensure()
    (first,) = api.list("Pod", egress.labels)
    second = api.start_pod(api.objects[("Deployment", egress.name)])

    def line(at: str, destination: str) -> str:
        event = {
            "event": "egress",
            "backend": "b-1",
            "decision": "refused",
            "kind": "http",
            "destination": destination,
            "reason": "not on the allow-list",
        }
        return f"{at} {json.dumps(event)}"

    api.logs_by_pod = {
        first["metadata"]["name"]: line("2026-11-26T10:00:02Z", "late.test:80"),
        second["metadata"]["name"]: line("2026-11-26T10:00:01Z", "early.test:80"),
    }
    refusals = egress.refusals("b-1")
    assert [r.destination for r in refusals] == ["early.test:80", "late.test:80"]
    text = 'beephost_egress_total{decision="allowed"} 2.0\n'
    api.metrics_by_pod = {
        first["metadata"]["name"]: text,
        second["metadata"]["name"]: text,
    }
    assert egress.counts() == {"allowed": 4}
