"""Egress allow-lists on the test cluster, end to end, on a fake internet of pods
(tests/cluster/cluster_internet.py), with the controller the chart deploys (what users
run; its RBAC must let it make the proxy's Deployment and exec into its pods). The
controller process on the node runs the same egress code: tests/cluster/test_kube_engine
covers both kinds for the engine itself, so this module runs on one, for CI's time.

An operator stores a secret and creates an environment whose allow-list names
``api.allowed.test`` with the secret attached and ``other.test`` without; an http
backend runs on it as a pod whose only way out is the controller's egress proxy (a
Deployment in the sandbox namespace, reached at its Service), beside a backend without
an allow-list. From inside the sandbox: allowed HTTPS with ``requests`` (the server sees
the secret, the sandbox only its marker), plain HTTP with ``urllib``; the escape table's
rows that go through the proxy (tests/e2e/egress_escapes.py) refused with the proxy's
reasons, and the ways around it refused by the pod's firewall at once; the secret in
no object of the namespace, nowhere in the sandbox; the refusals in
``egress_refusals`` and the controller's ``/metrics``; a proxy pod Kubernetes starts
again is configured again.
"""

import base64
import re
import secrets
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from beephost_client import Client
from beephost_client.controller import Backend, ControllerClient
from beephost_controller.images.layout import CONTAINER_PORTS
from tests.certs import TestCA
from tests.cluster.chart_controller import CA_BUNDLE_PATH
from tests.cluster.cluster_internet import ClusterInternet
from tests.cluster.conftest import (
    Cluster,
    condition,
    delete_namespaces,
    wait_until,
)
from tests.cluster.controllers import cluster_controller
from tests.cluster.kube_controller import ClusterController
from tests.e2e.egress_escapes import ESCAPES, FAST, FIND_SECRET, PRELUDE, Escape, Where
from tests.e2e.fake_internet import (
    ALLOWED,
    INTERNAL,
    MARKER,
    MARKER_VARIABLE,
    OTHER,
    SECRET_NAME,
    allow_list,
    sha256,
)

pytestmark = pytest.mark.cluster

#: The kubelet's port on the node.
KUBELET_PORT = 10250

#: A value of this run only: found anywhere, it leaked.
SECRET = f"sk-fake-{secrets.token_hex(20)}"
ENVIRONMENT = "egress"
REFUSED = r"ConnectionRefusedError: \[Errno 111\] Connection refused"

#: The escape table's rows about Docker's way around the proxy (a container with no
#: interface; another sandbox's port published on the host's loopback): a pod has an
#: interface, closed by its firewall, and ``POD_ESCAPES`` below tries the same there.
AROUND_ON_DOCKER = {
    "a direct connect to a server's address",
    "a raw socket to an outside address",
    "UDP",
    "a DNS lookup",
    "requests ignoring the proxy variables",
    "IPv6",
    "the controller's port on this host",
    "the controller's port on loopback",
    "another sandbox's port on this host",
    "another sandbox's port on loopback",
}
THROUGH = tuple(e for e in ESCAPES if e.case not in AROUND_ON_DOCKER)


@pytest.fixture(scope="module")
def internet(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterInternet]:
    made = ClusterInternet(
        cluster=cluster,
        namespace=f"bh-fake-internet-{uuid.uuid4().hex[:6]}",
        ca=TestCA.make(),
        directory=tmp_path_factory.mktemp("fake-internet"),
    )
    made.create_namespace()
    try:
        made.create_services()
        yield made
    finally:
        delete_namespaces(cluster, [made.namespace])


@pytest.fixture(scope="module", params=["chart"])
def controller(
    request: pytest.FixtureRequest,
    cluster: Cluster,
    internet: ClusterInternet,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ClusterController]:
    run = {"io.beephost.test.run": f"kube-egress-{uuid.uuid4().hex[:10]}"}
    with cluster_controller(
        request,
        cluster,
        tmp_path_factory,
        run,
        settings=internet.controller_settings(),
        # The test CA beside the machine's, where the chart mounts its bundle.
        chart_settings=internet.controller_settings(CA_BUNDLE_PATH),
        trusted=internet.ca_file.read_bytes(),
        # The servers' pods run its environment image: gone first, or it stays.
        before_images_go=internet.stop_servers,
    ) as controller:
        yield controller


@pytest.fixture(scope="module")
def sandboxes(controller: ClusterController) -> str:
    """The namespace of the controller's pods."""
    return controller.namespace


@dataclass
class Sandbox:
    api: ControllerClient
    backend: Backend
    neighbour: Backend
    client: Client
    where: Where
    #: Addresses the firewall must close: another sandbox's pod, the API server.
    neighbour_ip: str
    api_server: str
    #: internal.test's address (a private one no policy names).
    internal: str

    def run(self, code: str, timeout: float = 60) -> Any:
        return self.client.execute(PRELUDE + "\n" + code, timeout=timeout).value


def _pod_ip(cluster: Cluster, namespace: str, backend: Backend) -> str:
    pods = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"io.beephost.backend={backend.id}"
    ).items
    (pod,) = pods
    return str(cluster.as_json(pod)["status"]["podIP"])


@pytest.fixture(scope="module")
def sandbox(
    controller: ClusterController,
    internet: ClusterInternet,
    cluster: Cluster,
    sandboxes: str,
) -> Iterator[Sandbox]:
    with controller.client(timeout=60) as api:
        api.set_secret(SECRET_NAME, SECRET)
        env = api.ensure_environment(
            ENVIRONMENT, requirements=["requests"], egress={"allow": allow_list()}
        )
        if env.job_id is not None:
            job = api.wait_job(env.job_id, timeout=900)
            assert job.succeeded, job.error
        image = api.environment(ENVIRONMENT).image
        assert image is not None
        internet.start_servers(image)
        started: list[Backend] = []
        try:
            started.append(api.start_backend(ENVIRONMENT, "http"))
            started.append(
                api.start_backend(ENVIRONMENT, "http", options={"network": False})
            )
            backend, neighbour = (
                api.wait_backend(b.id, status="ready", timeout=300) for b in started
            )
            assert backend.status == neighbour.status == "ready", (backend, neighbour)
            kube_api = cluster.as_json(
                cluster.core.read_namespaced_service("kubernetes", "default")
            )
            where = Where(
                api=internet.addresses[ALLOWED],
                gateway=cluster.node_ip,
                private=internet.private_address,
                controller_port=urllib.parse.urlsplit(controller.url).port or 0,
                neighbour_port=CONTAINER_PORTS["http"] or 0,
            )
            with api.connect_backend(backend.id) as sandbox_client:
                yield Sandbox(
                    api,
                    backend,
                    neighbour,
                    sandbox_client,
                    where,
                    neighbour_ip=_pod_ip(cluster, sandboxes, neighbour),
                    api_server=kube_api["spec"]["clusterIP"],
                    internal=internet.addresses[INTERNAL],
                )
        finally:
            for backend in started:
                api.stop_backend(backend.id)


# -- allowed ------------------------------------------------------------------------


def test_the_sandbox_is_given_the_proxys_service_and_a_marker_only(
    sandbox: Sandbox, cluster: Cluster, sandboxes: str, controller: ClusterController
) -> None:
    seen = sandbox.run(
        "{k: v for k, v in os.environ.items() if 'PROXY' in k.upper() "
        f"or k in ('SSL_CERT_FILE', {MARKER_VARIABLE!r})}}"
    )
    assert seen[MARKER_VARIABLE] == MARKER
    proxy = urllib.parse.urlsplit(seen["HTTPS_PROXY"])
    service = cluster.as_json(
        cluster.core.read_namespaced_service(
            f"beephost-{controller.name}-egress", sandboxes
        )
    )
    assert (proxy.hostname, proxy.port) == (service["spec"]["clusterIP"], 3128)
    assert proxy.username == sandbox.backend.id
    # The credential is in the pod's Secret, not its spec.
    pod = cluster.as_json(
        cluster.core.read_namespaced_pod(
            f"beephost-{controller.name}-{sandbox.backend.id}", sandboxes
        )
    )
    assert proxy.password
    assert proxy.password not in str(pod)
    assert pod["spec"]["dnsPolicy"] == "None"


def test_allowed_https_with_requests_carries_the_secret_it_never_saw(
    sandbox: Sandbox,
) -> None:
    answer = sandbox.run(
        "import requests\n"
        f"_marker = os.environ[{MARKER_VARIABLE!r}]\n"
        f"_reply = requests.get('https://{ALLOWED}/weather?city=x', timeout=15, "
        "headers={'Authorization': f'Bearer {_marker}'})\n"
        "{'status': _reply.status_code, 'json': _reply.json()}"
    )
    assert answer["status"] == 200, answer
    seen = answer["json"]
    assert (seen["server"], seen["scheme"]) == (ALLOWED, "https")
    assert seen["authorization_sha256"] == sha256(f"Bearer {SECRET}")
    assert "Proxy-Authorization" not in seen["headers"]


def test_plain_http_with_urllib(sandbox: Sandbox) -> None:
    answer = sandbox.run(
        f"json.load(urllib.request.urlopen('http://{OTHER}/plain', timeout=15))"
    )
    assert (answer["server"], answer["scheme"], answer["path"]) == (
        OTHER,
        "http",
        "/plain",
    )


# -- refused ---------------------------------------------------------------------------


@pytest.mark.parametrize("escape", THROUGH, ids=lambda e: e.case)
def test_an_escape_through_the_proxy_is_refused_with_its_reason(
    sandbox: Sandbox, escape: Escape
) -> None:
    code, expect = escape.render(sandbox.where)
    answer = sandbox.run(code)
    assert expect.search(answer["outcome"]), (
        f"{escape.case}: {answer['outcome']!r} does not match {expect.pattern!r}"
    )
    assert answer["seconds"] < FAST, f"{escape.case}: took {answer['seconds']} s"


def test_the_ways_around_the_proxy_are_refused_by_the_pods_firewall_at_once(
    sandbox: Sandbox,
) -> None:
    where = sandbox.where
    rows = {
        "a server's address": (f"_connect({where.api!r}, 443)", REFUSED),
        "the internal service": (f"_connect({sandbox.internal!r}, 8080)", REFUSED),
        "an outside address": ("_connect('1.1.1.1', 443)", REFUSED),
        "UDP": (
            "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('8.8.8.8', 53))",
            r"PermissionError: \[Errno 1\]",
        ),
        "a DNS lookup": (
            f"socket.getaddrinfo({ALLOWED!r}, 443)",
            r"gaierror: \[Errno -?\d+\] .*(resolution|not known)",
        ),
        "IPv6": (
            "_connect('2606:4700:4700::1111', 443)",
            r"(ConnectionRefusedError|OSError): \[Errno (111|101|99|97)\]",
        ),
        "the controller on the node": (
            f"_connect({where.gateway!r}, {where.controller_port})",
            REFUSED,
        ),
        "the kubelet": (f"_connect({where.gateway!r}, {KUBELET_PORT})", REFUSED),
        "another sandbox's pod": (
            f"_connect({sandbox.neighbour_ip!r}, {CONTAINER_PORTS['http']})",
            REFUSED,
        ),
        "the API server": (f"_connect({sandbox.api_server!r}, 443)", REFUSED),
        "requests ignoring the proxy variables": (
            f"_direct.get('https://{ALLOWED}/', timeout=10)",
            r"ConnectionError: .*(NameResolution|resolution|not known)",
        ),
    }
    code = (
        "import requests\n"
        "_direct = requests.Session()\n"
        "_direct.trust_env = False\n"
        "{\n"
        + "".join(
            f"    {name!r}: _outcome(lambda: {action}),\n"
            for name, (action, _) in rows.items()
        )
        + "}"
    )
    outcomes = sandbox.run(code)
    for name, (_, expect) in rows.items():
        outcome = outcomes[name]
        assert re.search(expect, outcome["outcome"]), (name, outcome)
        assert outcome["seconds"] < FAST, (name, outcome)


# -- the secret, nowhere ----------------------------------------------------------------


def test_the_secret_is_in_no_object_of_the_namespace_nor_in_the_sandbox(
    sandbox: Sandbox, cluster: Cluster, sandboxes: str
) -> None:
    core = cluster.core
    objects = [
        *core.list_namespaced_pod(sandboxes).items,
        *core.list_namespaced_secret(sandboxes).items,
        *core.list_namespaced_config_map(sandboxes).items,
        *client.AppsV1Api(cluster.api).list_namespaced_deployment(sandboxes).items,
    ]
    dumped = str([cluster.as_json(item) for item in objects])
    assert "beephost-" in dumped  # the listing read the controller's objects
    assert SECRET not in dumped
    assert SECRET.encode().hex() not in dumped
    assert base64.b64encode(SECRET.encode()).decode()[:40] not in dumped
    # Sent reversed: the code itself (wherever the server keeps it) never holds it.
    answer = sandbox.run(
        FIND_SECRET + f"_scan({SECRET[::-1]!r}[::-1].encode())", timeout=300
    )
    assert answer["files"] > 100, "the scan read the sandbox's files"
    assert answer["found"] == [], f"the secret is readable in the sandbox: {answer}"


# -- audit ----------------------------------------------------------------------------


def test_refusals_are_told_by_the_sdk_and_metrics(sandbox: Sandbox) -> None:
    sandbox.run("_outcome(lambda: _get('http://elsewhere.test/'))")
    refusals = sandbox.api.egress_refusals(sandbox.backend.id, limit=100)
    destinations = {r.destination for r in refusals}
    assert "elsewhere.test:80" in destinations, sorted(destinations)
    for refusal in refusals:
        assert refusal.reason
        assert refusal.at is not None
        assert SECRET not in refusal.reason
    metrics = sandbox.api.metrics()
    counts = dict(
        re.findall(r'^beephost_egress_total\{decision="(\w+)"\} (\S+)$', metrics, re.M)
    )
    assert float(counts["refused"]) >= 1, counts
    assert float(counts["allowed"]) >= 1, counts


def test_a_proxy_pod_started_again_is_configured_again(
    sandbox: Sandbox, cluster: Cluster, sandboxes: str, controller: ClusterController
) -> None:
    selector = f"io.beephost.egress.proxy={controller.name}"

    def proxy_pods() -> list[dict[str, Any]]:
        listed = cluster.core.list_namespaced_pod(sandboxes, label_selector=selector)
        pods = [cluster.as_json(pod) for pod in listed.items]
        return [pod for pod in pods if "deletionTimestamp" not in pod["metadata"]]

    (old,) = proxy_pods()
    # As a crash would: gone at once, and its Deployment starts another.
    cluster.core.delete_namespaced_pod(
        old["metadata"]["name"], sandboxes, grace_period_seconds=0
    )

    def replaced() -> dict[str, Any] | None:
        pods = proxy_pods()
        if len(pods) != 1 or pods[0]["metadata"]["uid"] == old["metadata"]["uid"]:
            return None
        return pods[0] if condition(pods[0], "Ready") else None

    new = wait_until("a new proxy pod ready", replaced, timeout=120)

    def answered() -> int | None:
        # Only the new pod serves the Service: an answer is its configuration's.
        outcome = sandbox.run(
            f"_outcome(lambda: json.load(urllib.request.urlopen('http://{OTHER}/again', timeout=5))['server'])"
        )["outcome"]
        return 1 if outcome == f"ok: {OTHER}" else None

    wait_until("the new proxy pod serves the allow-list", answered, timeout=60)
    assert [pod["metadata"]["uid"] for pod in proxy_pods()] == [new["metadata"]["uid"]]
