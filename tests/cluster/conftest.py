"""Fixtures for the cluster tier: the test Kubernetes of ``scripts/k8s-testbed``.

``scripts/test`` brings the cluster up and sources its env file (``KUBECONFIG``,
``BEEPHOST_K8S_REGISTRY``, ``BEEPHOST_K8S_NODE_IP``); run by hand, the fixtures read
``$BEEPHOST_K8S_DIR/env`` (default ``/tmp/beephost-k8s/env``) themselves. Without a
cluster the tier is skipped, except under ``CI=true`` where that is a failure.

Every Kubernetes object a test makes carries ``io.beephost.test=<name>`` and lives in a
namespace of the test's own, deleted (and waited for) afterwards.
"""

import json
import os
import shlex
import subprocess
import tarfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
from kubernetes import client, config

HERE = Path(__file__).parent
REPO = HERE.resolve().parents[1]
TEST_LABEL = "io.beephost.test"
TESTBED_LABEL = "io.beephost.testbed=true"
T = TypeVar("T")
#: Lines of a controller's log a failed test's report shows.
LOG_TAIL = 200


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that used a ``controller`` reports its log's tail: a flake on
    CI is then explained by the run that had it."""
    report = yield
    fixtures = getattr(item, "funcargs", {})
    controller = fixtures.get("controller")
    if report.failed and controller is not None and hasattr(controller, "log"):
        try:
            tail = "\n".join(controller.log().splitlines()[-LOG_TAIL:])
        except Exception as exc:  # the report must not fail for the log
            tail = f"(no log: {exc!r})"
        report.sections.append(("controller log", tail))
    return report


def unavailable(reason: str) -> NoReturn:
    """Skip, except under ``CI=true`` where a missing cluster is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: failing instead of skipping)", pytrace=False)
    pytest.skip(reason)


def wait_until(what: str, probe: Callable[[], T | None], timeout: float = 120.0) -> T:
    """Poll ``probe`` twice a second until it returns something; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception as exc:  # a probe may race the thing it waits for
            last_error = exc
        else:
            if value is not None and value is not False:
                return value
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout:.0f} s (last error: {last_error!r})")


@dataclass(frozen=True)
class Cluster:
    """What ``scripts/k8s-testbed up`` wrote to its env file."""

    kubeconfig: str
    registry: str
    node_ip: str
    node_name: str
    api: client.ApiClient

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def as_json(self, model: object) -> dict[str, Any]:
        """An API object as its JSON (camelCase keys): reads without None checks at each level."""
        data: dict[str, Any] = self.api.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]  # untyped in the client
        return data


def _testbed_env() -> dict[str, str]:
    names = (
        "KUBECONFIG",
        "BEEPHOST_K8S_REGISTRY",
        "BEEPHOST_K8S_NODE_IP",
        "BEEPHOST_K8S_NODE_NAME",
    )
    if all(os.environ.get(name) for name in names):
        return {name: os.environ[name] for name in names}
    env_file = Path(os.environ.get("BEEPHOST_K8S_DIR", "/tmp/beephost-k8s")) / "env"
    if not env_file.is_file():
        unavailable(
            f"no test cluster ({env_file} missing): run scripts/k8s-testbed install && scripts/k8s-testbed up"
        )
    values: dict[str, str] = {}
    for line in env_file.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            values[name] = shlex.split(value)[0]
    return values


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    env = _testbed_env()
    api = config.new_client_from_config(config_file=env["KUBECONFIG"])  # type: ignore[no-untyped-call]  # untyped in the client
    try:
        client.VersionApi(api).get_code(_request_timeout=10)
    except Exception as exc:
        api.close()
        unavailable(f"the test cluster's API is not reachable: {exc}")
    yield Cluster(
        kubeconfig=env["KUBECONFIG"],
        registry=env["BEEPHOST_K8S_REGISTRY"],
        node_ip=env["BEEPHOST_K8S_NODE_IP"],
        node_name=env["BEEPHOST_K8S_NODE_NAME"],
        api=api,
    )
    api.close()


def _docker(*args: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"docker {' '.join(args)}: {result.stderr.decode(errors='replace')}"
        )
    return result.stdout.decode().strip()


@pytest.fixture(scope="session")
def hello_image(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``tests/cluster/hello.c``, static, imported, pushed to the testbed's registry: its digest reference.

    The local tag is removed after the push, so the kubelet has to pull by digest.
    """
    build = tmp_path_factory.mktemp("hello")
    subprocess.run(
        ["gcc", "-Os", "-static", "-o", str(build / "hello"), str(HERE / "hello.c")],
        check=True,
    )
    rootfs = BytesIO()
    with tarfile.open(fileobj=rootfs, mode="w") as tar:
        tar.add(build / "hello", arcname="hello")
    repository = f"{cluster.registry}/beephost-test/hello"
    tag = f"{repository}:{uuid.uuid4().hex[:12]}"
    _docker(
        "import", "-c", 'ENTRYPOINT ["/hello"]', "-c", f"LABEL {TESTBED_LABEL}", "-", tag,
        stdin=rootfs.getvalue(),
    )  # fmt: skip
    reference = push_by_digest(tag, repository)
    yield reference
    forget_pushed(cluster, reference)


def push_by_digest(tag: str, repository: str) -> str:
    """Push the local ``tag`` (named in the registry's ``repository``) and remove the
    tag: its digest reference, which the kubelet then has to pull."""
    reference = ""
    try:
        _docker("push", tag)
        digests: list[str] = json.loads(
            _docker("image", "inspect", "--format", "{{json .RepoDigests}}", tag)
        )
        reference = next(
            digest for digest in digests if digest.startswith(repository + "@")
        )
    finally:
        _docker("image", "rm", tag)
    return reference


def forget_pushed(cluster: Cluster, reference: str) -> None:
    """The kubelet's pulled copy of ``reference``, then the registry's manifest."""
    subprocess.run(
        ["docker", "image", "rm", reference], capture_output=True, check=False
    )
    repository, _, digest = reference.partition("@")
    path = repository.removeprefix(cluster.registry + "/")
    request = urllib.request.Request(
        f"http://{cluster.registry}/v2/{path}/manifests/{digest}", method="DELETE"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202


@pytest.fixture(scope="module")
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the module's own; deleted afterwards, and nothing of it left."""
    test = request.module.__name__.rpartition(".")[2]
    name = f"bh-{test.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={TEST_LABEL: test})
        )
    )
    yield name
    delete_namespaces(cluster, [name])
    labelled = cluster.core.list_pod_for_all_namespaces(
        label_selector=f"{TEST_LABEL}={test}"
    ).items
    assert labelled == [], "pods of the test outlived its namespace"


def delete_namespaces(cluster: Cluster, names: list[str]) -> None:
    """Delete the namespaces, wait until they are gone and the kubelet has removed
    their pods' containers (its container GC runs once a minute)."""
    for name in names:
        try:
            cluster.core.delete_namespace(name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise

    def gone(name: str) -> bool:
        try:
            cluster.core.read_namespace(name)
        except client.ApiException as exc:
            return bool(exc.status == 404)
        return False

    for name in names:
        wait_until(f"namespace {name} deleted", lambda: gone(name), timeout=180)  # noqa: B023  # called before the loop moves on
    for name in names:
        wait_until(
            f"the kubelet's containers of {name} removed",
            lambda: containers_removed(name),  # noqa: B023  # called before the loop moves on
            timeout=150,
        )


def pod_containers(namespace: str, *filters: str) -> list[str]:
    """The containers the kubelet made for pods of ``namespace`` (and ``filters``)."""
    command = ["docker", "ps", "-aq"]
    for given in (f"label=io.kubernetes.pod.namespace={namespace}", *filters):
        command += ["--filter", given]
    return subprocess.run(
        command, capture_output=True, text=True, check=True
    ).stdout.split()


def containers_removed(namespace: str) -> bool:
    """Whether no container of ``namespace``'s pods is left, after removing those
    that stopped.

    The kubelet removes a deleted pod's stopped containers only at its next container
    GC, once a minute (kubelet 1.20's ContainerGCPeriod): each module's teardown waited
    up to that minute. A stopped sandbox's network was torn down before it stopped
    (dockershim's StopPodSandbox), and the kubelet's GC takes a sandbox that is gone
    from Docker as removed: the test removes them itself, by the kubelet's label.
    """
    stopped = pod_containers(
        namespace, "status=exited", "status=created", "status=dead"
    )
    if stopped:
        subprocess.run(
            ["docker", "rm", "--force", "--volumes", *stopped],
            capture_output=True,
            check=False,  # one the kubelet removed meanwhile: checked below
        )
    return not pod_containers(namespace)


def condition(obj: dict[str, Any], kind: str) -> bool:
    """Whether a pod's or node's (as JSON) condition ``kind`` is True."""
    conditions = obj["status"].get("conditions", [])
    return any(c["type"] == kind and c["status"] == "True" for c in conditions)


def remove_images(labels: dict[str, str]) -> None:
    """Remove the local images carrying ``labels`` (what a controller built)."""
    from beephost_controller.engine.docker_images import DockerEngine

    engine = DockerEngine.from_env()
    try:
        engine.remove_by_labels(labels)
    finally:
        engine.close()


@pytest.fixture(scope="session")
def product_images() -> None:
    """The images the chart's controller needs on the engine it builds with: its own
    (pushed to the registry) and the base and backend images it builds on, which it
    cannot make itself (no mmdebstrap in its image). Built once, reused by key."""
    for extra in ([], ["--controller"]):
        subprocess.run(
            [str(REPO / "scripts" / "build-images"), "--python", "3.11", *extra],
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=1800,
        )
