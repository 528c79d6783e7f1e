"""The test cluster works end to end: a node, an image of ours pulled by digest, pod and Service networking.

One server pod (``hello serve``) from the image the session builds and pushes to the
testbed's registry, referenced by digest; a ClusterIP Service in front of it; a client pod
(``hello get``) that reaches the Service from inside the cluster. Objects are read back as
their JSON (``Cluster.as_json``).
"""

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.cluster.conftest import TEST_LABEL, Cluster, condition, wait_until

pytestmark = pytest.mark.cluster

LABELS = {TEST_LABEL: "test_smoke", "app": "hello"}
PORT = 8080
GREETING = "hello from hello-server\n"


def _http_get(address: str, port: int) -> str:
    """The body of ``GET /`` at address:port (HTTP/1.0, the server closes the connection)."""
    with socket.create_connection((address, port), timeout=5) as connection:
        connection.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reply = b"".join(iter(lambda: connection.recv(4096), b""))
    head, _, body = reply.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.0 200 "), head
    return body


def _container(name: str, image: str, args: list[str]) -> client.V1Container:
    return client.V1Container(
        name=name,
        image=image,
        image_pull_policy="IfNotPresent",
        args=args,
        security_context=client.V1SecurityContext(
            run_as_user=65534,
            run_as_non_root=True,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=client.V1Capabilities(drop=["ALL"]),
        ),
    )


def _read_pod(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.as_json(cluster.core.read_namespaced_pod(name, namespace))


@pytest.fixture(scope="module")
def server(
    cluster: Cluster, namespace: str, hello_image: str
) -> Iterator[dict[str, Any]]:
    """The server pod, Running and Ready; its create-to-Ready time is printed, not asserted."""
    container = _container("hello", hello_image, ["serve", str(PORT)])
    container.ports = [client.V1ContainerPort(container_port=PORT)]
    container.readiness_probe = client.V1Probe(
        http_get=client.V1HTTPGetAction(path="/", port=PORT), period_seconds=1
    )
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="hello-server", labels=LABELS),
        spec=client.V1PodSpec(
            containers=[container],
            automount_service_account_token=False,
            termination_grace_period_seconds=5,
        ),
    )
    started = time.monotonic()
    cluster.core.create_namespaced_pod(namespace, pod)

    def ready() -> dict[str, Any] | None:
        current = _read_pod(cluster, namespace, "hello-server")
        if current["status"]["phase"] in ("Failed", "Succeeded"):
            pytest.fail(f"the server pod ended: {current['status']}")
        return current if condition(current, "Ready") else None

    running = wait_until("the server pod Ready", ready)
    print(f"\nserver pod: created -> Ready in {time.monotonic() - started:.1f} s")
    yield running
    cluster.core.delete_namespaced_pod("hello-server", namespace)


@pytest.fixture(scope="module")
def service(cluster: Cluster, namespace: str, server: dict[str, Any]) -> dict[str, Any]:
    """A ClusterIP Service in front of the server pod, once the pod is its endpoint."""
    created = cluster.core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="hello", labels=LABELS),
            spec=client.V1ServiceSpec(
                selector={"app": "hello"},
                ports=[client.V1ServicePort(port=80, target_port=PORT)],
            ),
        ),
    )

    def endpoint() -> bool:
        endpoints = cluster.as_json(
            cluster.core.read_namespaced_endpoints("hello", namespace)
        )
        subsets = endpoints.get("subsets", [])
        ips = [
            address["ip"]
            for subset in subsets
            for address in subset.get("addresses", [])
        ]
        return ips == [server["status"]["podIP"]]

    wait_until("the Service's endpoint", endpoint, timeout=60)
    return cluster.as_json(created)


def test_the_node_is_ready(cluster: Cluster) -> None:
    nodes = cluster.as_json(cluster.core.list_node())["items"]
    assert [node["metadata"]["name"] for node in nodes] == [cluster.node_name]
    (node,) = nodes
    assert condition(node, "Ready")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == cluster.node_ip
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.20.2"


def test_a_pod_of_our_image_by_digest_is_running_and_ready(
    server: dict[str, Any], hello_image: str
) -> None:
    assert "@sha256:" in hello_image
    assert server["spec"]["containers"][0]["image"] == hello_image
    assert server["status"]["phase"] == "Running"
    (status,) = server["status"]["containerStatuses"]
    assert status["ready"] is True
    assert status["imageID"] == f"docker-pullable://{hello_image}"


def test_the_pod_answers_the_host_at_its_ip(server: dict[str, Any]) -> None:
    assert _http_get(server["status"]["podIP"], PORT) == GREETING


def test_the_service_answers_the_host_at_its_cluster_ip(
    service: dict[str, Any],
) -> None:
    address = service["spec"]["clusterIP"]
    # kube-proxy writes the Service's rules a moment after the endpoint appears.
    body = wait_until(
        f"{address}:80 answering", lambda: _http_get(address, 80), timeout=30
    )
    assert body == GREETING


def test_a_pod_reaches_the_service(
    cluster: Cluster, namespace: str, hello_image: str, service: dict[str, Any]
) -> None:
    args = ["get", service["spec"]["clusterIP"], "80"]
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(
            name="hello-client", labels={TEST_LABEL: "test_smoke"}
        ),
        spec=client.V1PodSpec(
            containers=[_container("get", hello_image, args)],
            restart_policy="Never",
            automount_service_account_token=False,
        ),
    )
    cluster.core.create_namespaced_pod(namespace, pod)

    def finished() -> str | None:
        phase: str = _read_pod(cluster, namespace, "hello-client")["status"]["phase"]
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_until("the client pod finished", finished)
    log = cluster.core.read_namespaced_pod_log("hello-client", namespace)
    assert (phase, log.splitlines()[0]) == ("Succeeded", "HTTP/1.0 200 OK"), log
    assert log.endswith(GREETING)
