"""The two engines side by side: an http backend's start-to-answer on Docker and on
Kubernetes, cold and from a warm pool, in one run.

    scripts/k8s-testbed up      # the test cluster (docs/operators/test-cluster.md)
    uv run python bench/engines.py [--starts N] [--seed N]

Runs two controllers (bench/controller.py's, each with its own labels and clean-up)
on a snapshot of the workspace: one on the Docker engine, one with
``ENGINE=kubernetes`` on the test cluster (its pods in a namespace of the run's own,
deleted afterwards; endpoints are ClusterIPs, which this machine, the node, reaches).
Each gets the environment ``bench`` and an http pool of 2. Then ``--starts`` (5)
starts per case, the four cases shuffled and interleaved so that both engines see the
same machine: from the ``start_backend`` request to the first ``1+1`` answered
through the backend's own transport, (a) FROM THE POOL (a claim; the reply carries the
endpoint) and (b) COLD (a token of its own: a new container or pod). Before each
start the pools are full again. Goals: a claim under 50 ms at p50 on both engines; the
cold start on Kubernetes is shown beside Docker's (the ratio), not judged.
"""

import argparse
import contextlib
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable

from bench import controller, pools
from bench._harness import entry
from bench._options import bench_parser, known_args

from beephost_client.controller import Backend, ControllerClient

POOL = {"http": 2}
CLAIM_GOAL_S = 0.050
TESTBED_ENV = Path("/tmp/beephost-k8s/env")

Start = Callable[[ControllerClient, str], tuple[float, Backend]]
CASES: dict[str, Start] = {"pool": pools.from_pool, "cold": pools.cold}  # type: ignore[dict-item]


def testbed() -> dict[str, str]:
    """The test cluster's env file (scripts/k8s-testbed up), as a dict."""
    values = {}
    for line in TESTBED_ENV.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            values[name] = value.strip('"')
    return values


@contextlib.contextmanager
def namespace(kubeconfig: str) -> Iterator[str]:
    """A namespace of the run's own, deleted afterwards (its pods with it)."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    core = client.CoreV1Api(api)
    name = f"bench-engines-{uuid.uuid4().hex[:6]}"
    labels = {"io.beephost.bench.run": name}
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
    )
    try:
        yield name
    finally:
        core.delete_namespace(name)
        api.close()


def measure(
    clients: dict[str, ControllerClient],
    args: argparse.Namespace,
    say: Callable[[str], None],
) -> dict[tuple[str, str], list[float]]:
    for client in clients.values():
        client.set_pool(pools.ENVIRONMENT, "http", POOL["http"])
    for engine, client in clients.items():
        say(f"{engine}: filling the pool")
        pools.wait_full(client, POOL)
        for start in CASES.values():  # one unmeasured start of each (imports)
            client.stop_backend(start(client, "http")[1].id)
            pools.wait_full(client, POOL)
    order = [(e, w) for e in clients for w in CASES for _ in range(args.starts)]
    random.Random(args.seed).shuffle(order)
    times: dict[tuple[str, str], list[float]] = {case: [] for case in order}
    for engine, way in order:
        client = clients[engine]
        pools.wait_full(client, POOL)
        seconds, backend = CASES[way](client, "http")
        times[(engine, way)].append(seconds)
        client.stop_backend(backend.id)
    for client in clients.values():
        client.set_pool(pools.ENVIRONMENT, "http", 0)
    return times


def report(times: dict[tuple[str, str], list[float]]) -> None:
    print("\nHTTP BACKEND, START TO FIRST 1+1 (s): p50 (min, max)")
    print(f"{'case':<18}{'p50':>8}{'min':>8}{'max':>8}{'vs docker':>11}")
    for way in CASES:
        docker_p50 = controller.stats(times[("docker", way)])[0]
        for engine in ("docker", "kubernetes"):
            p50, low, high = controller.stats(times[(engine, way)])
            ratio = f"{p50 / docker_p50:.2f}x"
            print(
                f"{engine + ' ' + way:<18}{p50:>8.3f}{low:>8.3f}{high:>8.3f}{ratio:>11}"
            )
    for engine in ("docker", "kubernetes"):
        p50 = controller.stats(times[(engine, "pool")])[0]
        verdict = "met" if p50 < CLAIM_GOAL_S else "NOT met"
        print(
            f"goal: a claim on {engine} under {CLAIM_GOAL_S * 1000:.0f} ms: {verdict}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--starts", type=int, default=5, help="starts per case")
    parser.add_argument("--seed", type=int, default=0)
    args = known_args(parser, argv)
    if controller.no_docker_cli():
        return 2
    if not TESTBED_ENV.exists():
        print("no test cluster: run scripts/k8s-testbed up first", file=sys.stderr)
        return 2
    bed = testbed()
    began = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - began:5.0f} s] {text}", file=sys.stderr)

    with contextlib.ExitStack() as stack:
        space = stack.enter_context(namespace(bed["KUBECONFIG"]))
        kube_settings = {
            "ENGINE": "kubernetes",
            "KUBERNETES_KUBECONFIG": bed["KUBECONFIG"],
            "KUBERNETES_NAMESPACE": space,
            "KUBERNETES_REGISTRY": f"{bed['BEEPHOST_K8S_REGISTRY']}/bench",
            "KUBERNETES_ENDPOINT": "cluster-ip",
        }
        clients: dict[str, ControllerClient] = {}
        for engine, settings in (("docker", {}), ("kubernetes", kube_settings)):
            ctl, client, _ = stack.enter_context(controller.running(say, settings))
            say(f"{engine}: building the environment")
            controller.create_environment(client, ctl, pools.ENVIRONMENT, [])
            clients[engine] = client
        times = measure(clients, args, say)
    report(times)
    return 0


if __name__ == "__main__":
    entry(main)
