"""A start on Kubernetes, planned: the row and the pod's plan from a request, and
what a cluster cannot run refused before anything is recorded."""

import base64
import json
from dataclasses import replace

import pytest

from beephost_controller.engine import kube_manifests as km
from beephost_controller.engine.kube_firewall import Destination, ruleset
from beephost_controller.engine.kube_manifests import TOKEN_DIR
from beephost_controller.engine.kube_plan import (
    NO_BIND_ADDRESS,
    WORKER_ENV_KEY,
    EgressRoute,
    KubePlan,
    plan,
)
from beephost_controller.engine.sandbox_env import EGRESS_TRUST_DIR
from beephost_controller.kube_settings import KubernetesSettings
from beephost_controller.rows import BackendRow
from beephost_controller.schemas.egress import EgressPolicy, EgressRule, SecretHeader
from beephost_controller.settings import Settings
from beephost_controller.starts import BackendRequest, Minted, token_digest
from beephost_protocol.errors import InvalidRequest, Unavailable
from tests.unit.controller.support import ready_environment

SETTINGS = Settings(name="ctl", backend_ttl=3600, backend_idle_timeout=600)
KUBE = KubernetesSettings(namespace="sandboxes", registry="r.example:5000/x")
MINTED = Minted(
    "b-0123456789ab", "tok-" + "x" * 28, "ctl-token", 1000, 1000, "egress-token"
)


def _plan(
    request: BackendRequest, env_name: str = "data"
) -> tuple[BackendRow, KubePlan]:
    return plan(
        request,
        ready_environment(env_name, image="local/env:1"),
        SETTINGS,
        KUBE,
        minted=MINTED,
        probe="exec",
    )


def test_an_http_start_is_a_pod_in_the_namespace_with_its_token_as_a_file() -> None:
    row, layout = _plan(BackendRequest("data", "http"))
    pod = layout.pod
    assert (row.id, row.container_name) == ("b-0123456789ab", pod.name)
    assert pod.name == "beephost-ctl-b-0123456789ab"
    assert pod.namespace == "sandboxes"
    assert layout.local_image == "local/env:1"
    assert (row.config.port, row.config.bind_address) == (None, NO_BIND_ADDRESS)
    assert (row.config.ttl, row.config.idle_timeout) == (3600, 600)
    assert pod.token_sha256 == token_digest(MINTED.token)
    assert pod.token_file_setting == "BEEPHOST_HTTP_BACKEND_TOKEN_SHA256_FILE"
    assert not any("TOKEN" in name and "FILE" not in name for name in pod.environment)
    assert MINTED.token not in str(pod)
    assert pod.probe == "http"  # an http backend is probed over HTTP on any version
    assert pod.selector == {"io.beephost.backend": "b-0123456789ab"}
    assert pod.network is False


def test_an_rpc_start_is_probed_as_the_server_version_allows() -> None:
    _, layout = _plan(BackendRequest("data", "rpc"))
    assert layout.pod.probe == "exec"
    assert layout.pod.port == 50051


def test_a_pool_member_has_no_lifetime_until_it_is_claimed() -> None:
    row, _ = _plan(BackendRequest("data", "http", pooled=True))
    assert (row.config.ttl, row.config.idle_timeout, row.config.pooled) == (
        None,
        None,
        True,
    )


def test_an_environment_name_no_label_takes_stays_in_the_annotation() -> None:
    _, layout = _plan(BackendRequest("data-", "http"), env_name="data-")
    assert "io.beephost.environment" not in layout.pod.labels
    assert layout.pod.annotations["io.beephost.environment"] == "data-"


@pytest.mark.parametrize(
    ("request_", "admin", "words"),
    [
        (BackendRequest("data", "pipe"), False, "Unix socket does not cross pods"),
        (BackendRequest("data", "http"), True, "admin environment"),
        (BackendRequest("data", "http", port=8080), False, "reached at its Service"),
        (
            BackendRequest("data", "http", bind_address="0.0.0.0"),
            False,
            "reached at its Service",
        ),
    ],
    ids=["pipe", "admin", "port", "bind-address"],
)
def test_what_a_cluster_cannot_run_is_refused(
    request_: BackendRequest, admin: bool, words: str
) -> None:
    env = replace(ready_environment("data", image="local/env:1"), admin=admin)
    with pytest.raises(InvalidRequest, match=words):
        plan(request_, env, SETTINGS, KUBE, minted=MINTED, probe="grpc")


# -- an allow-list start: its way out is the egress proxy's Service ------------------

ROUTE = EgressRoute(
    address="10.96.7.7",
    labels={"io.beephost.egress.proxy": "ctl"},
    trust_config_map="beephost-ctl-egress-trust",
)
WEATHER = EgressPolicy(
    allow=[
        EgressRule(
            host="api.weather.test",
            secret=SecretHeader(secret="weather-key", header="Authorization"),
        )
    ]
)


def _allow_list(**changes: object) -> tuple[BackendRow, KubePlan]:
    return plan(
        BackendRequest("data", "http", egress=WEATHER),
        ready_environment("data", image="local/env:1"),
        SETTINGS,
        KUBE.model_copy(update=changes) if changes else KUBE,
        minted=MINTED,
        probe="exec",
        egress=ROUTE,
    )


def test_an_allow_list_pod_reaches_the_proxy_alone_with_its_credential_in_a_secret() -> (
    None
):
    row, layout = _allow_list()
    pod = layout.pod
    assert row.config.egress_allow is not None
    assert pod.network is False
    # Its firewall opens the proxy's Service address and port, nothing else.
    assert pod.firewall == ruleset(pod.port, [Destination("10.96.7.7", 3128)])
    # The proxy credential is in the pod's Secret, never in its spec.
    assert MINTED.egress_token not in str(pod.environment)
    assert "BEEPHOST_HTTP_BACKEND_WORKER_ENV" not in pod.environment
    assert (
        pod.environment["BEEPHOST_HTTP_BACKEND_WORKER_ENV_FILE"]
        == f"{TOKEN_DIR}/{WORKER_ENV_KEY}"
    )
    worker_env = json.loads(pod.secret_files[WORKER_ENV_KEY])
    proxy = worker_env["HTTPS_PROXY"]
    assert proxy == f"http://{MINTED.backend_id}:{MINTED.egress_token}@10.96.7.7:3128"
    assert worker_env["SSL_CERT_FILE"] == f"{EGRESS_TRUST_DIR}/ca-bundle.pem"
    assert worker_env["WEATHER_KEY"] == "beephost-secret:weather-key"
    assert pod.egress_to == ROUTE.labels
    assert pod.trust_config_map == ROUTE.trust_config_map
    assert pod.no_dns is True


def test_an_allow_list_pods_objects_carry_the_route() -> None:
    _, layout = _allow_list()
    manifest = km.pod(layout.pod)
    assert manifest["spec"]["dnsPolicy"] == "None"
    assert manifest["spec"]["dnsConfig"] == {"nameservers": ["127.0.0.1"]}
    volumes = {v["name"]: v for v in manifest["spec"]["volumes"]}
    assert volumes["trust"]["configMap"] == {"name": "beephost-ctl-egress-trust"}
    mounts = manifest["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "trust", "mountPath": EGRESS_TRUST_DIR, "readOnly": True} in mounts
    assert MINTED.egress_token not in json.dumps(manifest)
    secret = km.token_secret(layout.pod)
    held = base64.b64decode(secret["data"][WORKER_ENV_KEY]).decode()
    assert MINTED.egress_token in held
    policy = km.network_policy(layout.pod)
    assert policy["spec"]["egress"] == [
        {
            "to": [{"podSelector": {"matchLabels": ROUTE.labels}}],
            "ports": [{"protocol": "TCP", "port": 3128}],
        }
    ]


def test_an_allow_list_without_the_pod_firewall_relies_on_the_policy() -> None:
    _, layout = _allow_list(pod_firewall=False)
    assert layout.pod.firewall is None
    assert layout.pod.egress_to == ROUTE.labels


def test_an_allow_list_without_a_proxy_is_refused() -> None:
    with pytest.raises(Unavailable, match="need the egress proxy"):
        plan(
            BackendRequest("data", "http", egress=WEATHER),
            ready_environment("data", image="local/env:1"),
            SETTINGS,
            KUBE,
            minted=MINTED,
            probe="exec",
        )


def test_a_start_without_an_allow_list_ignores_the_route() -> None:
    _, layout = plan(
        BackendRequest("data", "http"),
        ready_environment("data", image="local/env:1"),
        SETTINGS,
        KUBE,
        minted=MINTED,
        probe="exec",
        egress=ROUTE,
    )
    assert layout.pod.firewall == ruleset(layout.pod.port)
    assert layout.pod.secret_files == {}
    assert layout.pod.egress_to is None
    assert layout.pod.no_dns is False
