"""A start on Kubernetes, planned: the row and the pod's plan from a request, and
what a cluster cannot run refused before anything is recorded."""

from dataclasses import replace

import pytest

from beephost_controller.engine.kube_plan import NO_BIND_ADDRESS, KubePlan, plan
from beephost_controller.kube_settings import KubernetesSettings
from beephost_controller.rows import BackendRow
from beephost_controller.settings import Settings
from beephost_controller.starts import BackendRequest, Minted, token_digest
from beephost_protocol.errors import InvalidRequest
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
