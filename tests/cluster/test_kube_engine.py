"""The controller's Kubernetes engine on a real cluster (scripts/k8s-testbed).

Twice, once per way a controller runs there: a process on the node with
``ENGINE=kubernetes`` (its sandboxes in a namespace of the module's own), and the
controller as the chart deploys it (``chart_controller``: the chart's manifests applied,
its image pulled from the registry by digest, Docker access for builds only through
``controller.docker.host`` with TLS). Either builds an environment on the machine's
Docker engine, pushes it to the test bed's registry, and starts http and rpc backends as
pods that the SDK reaches at their Services. Then everything a user does on Docker:
eval, exec, streaming, files both ways, an install, a warm pool's claim, TTL and idle
expiry, a pod deleted by hand, the controller killed and adopting its pods, what a
cluster cannot run refused, and ``stop --all`` leaving the namespace empty; and an
offline backend closed by its pod firewall on a CNI that enforces no NetworkPolicy.
"""

import hashlib
import json
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from beephost_client import connect
from beephost_client.controller import Backend, ControllerClient
from beephost_controller.images.layout import CONTAINER_PORTS
from beephost_protocol.errors import InvalidRequest
from tests.cluster.conftest import Cluster, wait_until
from tests.cluster.controllers import cluster_controller
from tests.cluster.kube_controller import ClusterController
from tests.e2e.egress_escapes import FAST, PRELUDE

pytestmark = pytest.mark.cluster

ENV = "plain"
#: The environment the pool test sizes a pool of (its own: no other test's members).
POOLED = "pooled"


@pytest.fixture(scope="module", params=["process", "chart"])
def controller(
    request: pytest.FixtureRequest,
    cluster: Cluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ClusterController]:
    run = {"io.beephost.test.run": f"kube-engine-{uuid.uuid4().hex[:10]}"}
    with cluster_controller(request, cluster, tmp_path_factory, run) as controller:
        yield controller


@pytest.fixture(scope="module")
def sandboxes(controller: ClusterController) -> str:
    """The namespace of the controller's pods."""
    return controller.namespace


@pytest.fixture(scope="module")
def api(controller: ClusterController) -> Iterator[ControllerClient]:
    with controller.client(timeout=60) as api:
        for name in (ENV, POOLED):
            env = api.ensure_environment(name, requirements=[])
            if env.job_id is not None:
                job = api.wait_job(env.job_id, timeout=900)
                assert job.succeeded, job.error
        yield api


def _started(api: ControllerClient, kind: str, **options: Any) -> Backend:
    backend = api.start_backend(ENV, kind, **options)  # type: ignore[arg-type]
    ready = api.wait_backend(backend.id, status="ready", timeout=120)
    assert ready.status == "ready", ready
    return backend


def _pod(cluster: Cluster, sandboxes: str, backend: Backend) -> dict[str, Any] | None:
    pods = cluster.core.list_namespaced_pod(
        sandboxes, label_selector=f"io.beephost.backend={backend.id}"
    ).items
    return cluster.as_json(pods[0]) if pods else None


@pytest.mark.parametrize("kind", ["http", "rpc"])
def test_a_backend_is_a_hardened_pod_the_sdk_reaches(
    api: ControllerClient, cluster: Cluster, sandboxes: str, kind: str
) -> None:
    backend = _started(api, kind)
    try:
        found = api.backend(backend.id)
        assert found.endpoint is not None
        assert found.endpoint.startswith("http://" if kind == "http" else "grpc://")
        with connect(found.endpoint, token=backend.token) as sandbox:
            assert sandbox.evaluate("sum(range(10))") == 45
            result = sandbox.execute("import os\nprint(os.getuid())\n6 * 7")
            assert (result.stdout, result.value) == ("10001\n", 42)
            seen: list[str] = []
            sandbox.execute(
                "for i in range(3): print(i, flush=True)",
                on_output=lambda chunk: seen.append(str(chunk.data)),
            )
            assert "".join(seen) == "0\n1\n2\n"
            with sandbox.session() as session:
                counter = session.create("collections.Counter", "abracadabra")
                assert counter.most_common(1) == [("a", 5)]
        pod = _pod(cluster, sandboxes, backend)
        assert pod is not None
        spec = pod["spec"]
        (container,) = spec["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert spec["automountServiceAccountToken"] is False
        # The token is no part of the pod: neither itself nor its digest.
        assert backend.token is not None
        assert backend.token not in json.dumps(pod)
        digest = hashlib.sha256(backend.token.encode()).hexdigest()
        assert digest not in json.dumps(pod)
        # Without network: a policy that denies every egress, selecting it alone.
        policy = cluster.as_json(
            client.NetworkingV1Api(cluster.api).read_namespaced_network_policy(
                pod["metadata"]["name"], sandboxes
            )
        )
        # No egress rule at all (the API server leaves an empty list out).
        assert "Egress" in policy["spec"]["policyTypes"]
        assert policy["spec"].get("egress", []) == []
        assert policy["spec"]["podSelector"]["matchLabels"] == {
            "io.beephost.backend": backend.id
        }
    finally:
        api.stop_backend(backend.id)
    wait_until("the pod gone", lambda: _pod(cluster, sandboxes, backend) is None)


#: The kubelet's port, on the node's address.
KUBELET_PORT = 10250
#: Run in a sandbox after the escape table's helpers (``egress_escapes.PRELUDE``):
#: how a TCP connect to each target and a UDP datagram to the node end.
PROBE = """
result = {name: _outcome(lambda t=t: _connect(*t)) for name, t in TARGETS.items()}
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
result["udp"] = _outcome(lambda: udp.sendto(b"x", (TARGETS["node"][0], 53)))
result
"""


def test_a_backend_without_network_reaches_nothing_on_a_cni_that_enforces_nothing(
    api: ControllerClient, cluster: Cluster, sandboxes: str
) -> None:
    """The test bed's bridge CNI ignores NetworkPolicy: the pod firewall alone closes
    an offline backend, refusing at once. A backend with network, beside it, reaches
    every target (so each refusal below is the firewall's)."""
    online = _started(api, "http", options={"network": True})
    offline = _started(api, "http")
    try:
        peer = _pod(cluster, sandboxes, online)
        assert peer is not None
        kube_api = cluster.as_json(
            cluster.core.read_namespaced_service("kubernetes", "default")
        )
        targets = {
            "peer": (peer["status"]["podIP"], CONTAINER_PORTS["http"]),
            "api server": (kube_api["spec"]["clusterIP"], 443),
            "node": (cluster.node_ip, KUBELET_PORT),
        }
        code = f"{PRELUDE}\nTARGETS = {targets!r}\n{PROBE}"
        seen = {}
        for backend in (online, offline):
            endpoint = api.backend(backend.id).endpoint
            assert endpoint is not None
            with connect(endpoint, token=backend.token) as sandbox:
                seen[backend.id] = sandbox.execute(code).value
        outcomes = {
            backend.id: {name: row["outcome"] for name, row in seen[backend.id].items()}
            for backend in (online, offline)
        }
        assert outcomes[online.id] == {
            "peer": "ok: connected",
            "api server": "ok: connected",
            "node": "ok: connected",
            "udp": "ok: 1",
        }
        refused = "ConnectionRefusedError: [Errno 111] Connection refused"
        assert outcomes[offline.id] == {
            "peer": refused,
            "api server": refused,
            "node": refused,
            "udp": "PermissionError: [Errno 1] Operation not permitted",
        }
        # Refused at once, never into the connect's timeout.
        assert all(row["seconds"] < FAST for row in seen[offline.id].values())
        pod = _pod(cluster, sandboxes, offline)
        assert pod is not None
        (init,) = pod["spec"]["initContainers"]
        assert init["name"] == "firewall"
        assert init["securityContext"]["capabilities"]["add"] == ["NET_ADMIN"]
        assert "initContainers" not in peer["spec"]
        # Its port stays open to what may reach it: the SDK above, through the Service.
    finally:
        api.stop_backend(online.id)
        api.stop_backend(offline.id)


def test_files_go_both_ways_and_an_install_adds_a_package(
    api: ControllerClient, tmp_path: Path
) -> None:
    backend = _started(api, "http")
    try:
        found = api.backend(backend.id)
        assert found.endpoint is not None
        upload = tmp_path / "up.bin"
        upload.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
        with connect(found.endpoint, token=backend.token) as sandbox:
            sandbox.files.write("data/up.bin", upload)
            size = sandbox.evaluate("len(open('data/up.bin', 'rb').read())")
            assert size == upload.stat().st_size
            sandbox.execute("open('out.txt', 'w').write('made in a pod')")
            sandbox.files.download("out.txt", str(tmp_path / "out.txt"))
            assert (tmp_path / "out.txt").read_text() == "made in a pod"
            job = api.install(backend.id, ["six==1.17.0"])
            done = api.wait_job(job.id, timeout=300)
            assert done.succeeded, done.error
            assert sandbox.evaluate("__import__('six').__version__") == "1.17.0"
        names = {p.name for p in api.installed_packages(backend.id)}
        assert "six" in names
    finally:
        api.stop_backend(backend.id)


def test_a_pool_member_is_claimed(api: ControllerClient) -> None:
    api.set_pool(POOLED, "http", 1)
    try:
        wait_until(
            "a pool member ready",
            lambda: any(p.ready >= 1 for p in api.pools(POOLED) if p.type == "http"),
            timeout=120,
        )
        backend = api.start_backend(POOLED, "http")
        try:
            claimed = api.backend(backend.id)
            # Handed out ready: a pod that started before the request.
            assert claimed.status == "ready"
            assert claimed.claimed_at is not None
            assert claimed.endpoint is not None
            with connect(claimed.endpoint, token=backend.token) as sandbox:
                assert sandbox.evaluate("1 + 1") == 2
        finally:
            api.stop_backend(backend.id)
    finally:
        api.set_pool(POOLED, "http", 0)


def test_lifetime_and_idle_timeout_stop_pods(
    api: ControllerClient, cluster: Cluster, sandboxes: str
) -> None:
    # A lifetime counts from the start, ready or not: no wait for ready here.
    expiring = api.start_backend(ENV, "rpc", ttl=4)
    idle = _started(api, "http", idle_timeout=3)

    def stopped(backend: Backend) -> Backend | None:
        found = api.backend(backend.id)
        return found if found.status == "stopped" else None

    assert wait_until("the ttl's stop", lambda: stopped(expiring)).reason == "expired"
    assert wait_until("the idle stop", lambda: stopped(idle)).reason == "idle"
    for backend in (expiring, idle):

        def gone(backend: Backend = backend) -> bool:
            return _pod(cluster, sandboxes, backend) is None

        wait_until("its pod gone", gone)
        api.stop_backend(backend.id)


def test_a_pod_deleted_by_hand_shows_in_status(
    api: ControllerClient, cluster: Cluster, sandboxes: str
) -> None:
    backend = _started(api, "http")
    pod = _pod(cluster, sandboxes, backend)
    assert pod is not None
    cluster.core.delete_namespaced_pod(
        pod["metadata"]["name"], sandboxes, grace_period_seconds=0
    )

    def exited() -> Backend | None:
        found = api.backend(backend.id)
        return found if found.status == "exited" else None

    gone = wait_until("the backend exited", exited)
    assert gone.reason in ("deleted", "missing")
    api.stop_backend(backend.id)


def test_a_killed_controller_adopts_its_pods(
    api: ControllerClient, controller: ClusterController
) -> None:
    backend = _started(api, "http")
    try:
        controller.kill()
        controller.start()
        (counts,) = re.findall(r"reconciled backends: (\{.*\})", controller.log())[-1:]
        assert "'adopted': 1" in counts
        assert "'orphan_removed': 0" in counts
        found = api.backend(backend.id)
        assert found.status == "ready"
        assert found.endpoint is not None
        with connect(found.endpoint, token=backend.token) as sandbox:
            assert sandbox.evaluate("2 + 2") == 4
    finally:
        api.stop_backend(backend.id)


@pytest.mark.parametrize(
    ("kind", "options", "words"),
    [
        ("pipe", {}, "Unix socket does not cross pods"),
        ("http", {"port": 18080}, "reached at its Service"),
    ],
    ids=["pipe", "host-port"],
)
def test_what_a_cluster_cannot_run_is_refused(
    api: ControllerClient, kind: str, options: dict[str, Any], words: str
) -> None:
    with pytest.raises(InvalidRequest, match=words):
        api.start_backend(ENV, kind, **options)  # type: ignore[arg-type]
    # Nothing recorded for it: the refusal came before any row.
    assert all(b.status != "starting" for b in api.backends())


def test_stop_all_leaves_the_namespace_empty(
    api: ControllerClient,
    cluster: Cluster,
    sandboxes: str,
    controller: ClusterController,
) -> None:
    for kind in ("http", "rpc"):
        _started(api, kind)
    stop = subprocess.run(
        [
            sys.executable,
            "-m",
            "beephost_cli",
            "--controller",
            controller.url,
            "stop",
            "--all",
        ],
        env=controller.cli_environ(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert stop.returncode == 0, stop.stderr
    selector = f"io.beephost.controller={controller.name}"
    networking = client.NetworkingV1Api(cluster.api)

    def empty() -> bool:
        left = [
            *cluster.core.list_namespaced_pod(sandboxes, label_selector=selector).items,
            *cluster.core.list_namespaced_service(
                sandboxes, label_selector=selector
            ).items,
            *cluster.core.list_namespaced_secret(
                sandboxes, label_selector=selector
            ).items,
            *networking.list_namespaced_network_policy(
                sandboxes, label_selector=selector
            ).items,
        ]
        return not left

    wait_until("nothing of the controller's left in the namespace", empty)
    assert api.backends() == []


def _registry_has(registry: str, repository: str) -> bool:
    with urllib.request.urlopen(f"http://{registry}/v2/_catalog", timeout=5) as reply:
        return repository in json.loads(reply.read())["repositories"]


def test_environment_images_are_pulled_from_the_registry_by_digest(
    api: ControllerClient,
    cluster: Cluster,
    sandboxes: str,
    controller: ClusterController,
) -> None:
    backend = _started(api, "http")
    try:
        pod = _pod(cluster, sandboxes, backend)
        assert pod is not None
        image = pod["spec"]["containers"][0]["image"]
        assert image.startswith(f"{cluster.registry}/{controller.repository}/")
        assert "@sha256:" in image
        repository = image.partition("/")[2].partition("@")[0]
        assert _registry_has(cluster.registry, repository)
    finally:
        api.stop_backend(backend.id)
