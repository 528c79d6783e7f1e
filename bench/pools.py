"""Warm pools: start-to-ready from a pool against a cold start, a burst of sandboxes,
and what an idle pool member costs.

    uv run python bench/pools.py [--starts N] [--burst N] [--idle S] [--seed N]
                                 [--code-volumes auto|on|off]

Runs a controller (bench/controller.py's, same labels and clean-up) with an
environment without requirements, and pools of 2 per backend type on it. Then:

1. START-TO-READY per type, ``--starts`` (5) each way, in a shuffled order interleaved
   with the CONTAINER FLOOR (``docker run --rm --network none <base image> python3 -c
   pass``) and the NETWORK FLOOR (the same on the controller's offline network with a
   port published on loopback, as an http or rpc backend has: what the engine's network
   set-up adds; shown, not judged): from the ``start_backend`` request to the first ``1+1`` answered through
   the backend's own transport, (a) FROM THE POOL (a start with the defaults claims a
   ready member; the reply carries its endpoint, so the client connects at once) and
   (b) COLD (the same start with a token of its own, which no member can take: a new
   container, its endpoint asked for until published, ``1+1`` retried every 20 ms).
   Before each case the pools are full again, so no refill competes with it. Goals:
   p50 from a pool under 50 ms; cold at most 2x the floor.
2. A BURST of ``--burst`` (20) http sandboxes requested at once, from threads, until
   every one has answered ``1+1``: from a pool of that size (filled first), then cold.
3. IDLE MEMORY of a pool member per type (its default session's worker exists: the
   controller's readiness probe made it), after ``--idle`` (10) s, beside the floor
   container of bench/memory.py, read as bench/memory.py reads them. Goal: < 48 MiB.

``--code-volumes`` sets the controller's CODE_VOLUMES (auto: on for fuse-overlayfs and
vfs engines); the report says which driver the engine has and how many cold starts
mounted code volumes (the first start of the image begins their copy; the pools' fill
before the measured starts gives it time to end).
"""

import argparse
import concurrent.futures
import contextlib
import json
import random
import secrets
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable

import docker
from bench import controller, memory
from bench._harness import entry
from bench._options import bench_parser, known_args

from beephost_client.controller import Backend, BackendType, ControllerClient

ENVIRONMENT = "bench"
POOL_SIZE = 2
POOLED_GOAL_S = 0.050
COLD_GOAL_RATIO = 2.0
MEMORY_GOAL_MIB = 48.0
FILL_TIMEOUT = 300.0


@dataclass
class PoolTimes:
    """Seconds per case, and what the idle members use."""

    pooled: dict[str, list[float]] = field(default_factory=dict)
    cold: dict[str, list[float]] = field(default_factory=dict)
    floor: list[float] = field(default_factory=list)
    network_floor: list[float] = field(default_factory=list)
    burst: int = 0
    burst_pooled: float = 0.0
    burst_hits: int = 0  # of the burst's starts, those a member served
    burst_cold: float = 0.0
    #: Why the burst did not finish (the other tables are still reported).
    burst_failed: str | None = None
    #: The CODE_VOLUMES setting, the engine's storage driver, and of the measured
    #: cold starts, how many mounted code volumes.
    code_volumes: str = "auto"
    driver: str = ""
    cold_with_code: int = 0
    idle: memory.Idle | None = None


def wait_full(client: ControllerClient, sizes: Mapping[str, int]) -> None:
    """Until every pool named has its size ready and nothing starting."""
    deadline = time.monotonic() + FILL_TIMEOUT
    while True:
        pools = {p.type: p for p in client.pools(ENVIRONMENT)}
        if all(
            pools[kind].ready == size and not pools[kind].starting
            for kind, size in sizes.items()
        ):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the pools never filled: {pools}")
        time.sleep(0.1)


def from_pool(
    client: ControllerClient, kind: BackendType, *, strict: bool = True
) -> tuple[float, Backend]:
    """A start a pool serves; seconds to the first answer. Not ``strict``: a start
    no ready member served (a miss: a cold start) is waited for and counted too."""
    sent = time.perf_counter()
    backend = client.start_backend(ENVIRONMENT, kind)
    deadline = time.monotonic() + controller.START_TIMEOUT
    if backend.claimed_at is not None and backend.endpoint is not None:
        controller.answer(backend.endpoint, backend.token, deadline)
    elif strict:
        raise RuntimeError(f"the start was not served by the pool: {backend}")
    else:
        controller.answer_backend(client, backend, deadline)
    return time.perf_counter() - sent, backend


def cold(client: ControllerClient, kind: BackendType) -> tuple[float, Backend]:
    """A start no member can serve (a token of its own); seconds to the first answer."""
    sent = time.perf_counter()
    backend = client.start_backend(ENVIRONMENT, kind, token=secrets.token_urlsafe(24))
    deadline = time.monotonic() + controller.START_TIMEOUT
    controller.answer_backend(client, backend, deadline)
    return time.perf_counter() - sent, backend


def burst(
    url: str, count: int, start: Callable[[ControllerClient], tuple[float, Backend]]
) -> tuple[float, list[Backend]]:
    """``count`` starts at once, each from its own thread and client: seconds until
    every one answered."""
    barrier = threading.Barrier(count + 1)

    def one() -> Backend:
        with ControllerClient(url, timeout=controller.START_TIMEOUT) as own:
            barrier.wait()
            return start(own)[1]

    with concurrent.futures.ThreadPoolExecutor(count) as threads:
        futures = [threads.submit(one) for _ in range(count)]
        barrier.wait()
        sent = time.perf_counter()
        started = [f.result(controller.START_TIMEOUT * 2) for f in futures]
        return time.perf_counter() - sent, started


def mounts_code(backend: Backend) -> bool:
    """Whether the backend's container has its /usr from a code volume."""
    assert backend.container_id is not None
    mounts = json.loads(controller.docker("inspect", backend.container_id))[0]["Mounts"]
    return any(m["Destination"] == "/usr" for m in mounts)


def stop_all(client: ControllerClient, backends: list[Backend]) -> None:
    for backend in backends:
        with contextlib.suppress(Exception):
            client.stop_backend(backend.id)


def measure(
    client: ControllerClient,
    ctl: controller.Controller,
    args: argparse.Namespace,
    say: Callable[[str], None],
) -> PoolTimes:
    times = PoolTimes(burst=args.burst, code_volumes=args.code_volumes)
    times.driver = controller.docker("info", "--format", "{{.Driver}}").strip()
    image = controller.base_image(client)
    sizes: dict[str, int] = dict.fromkeys(controller.KINDS, POOL_SIZE)
    for kind in controller.KINDS:
        client.set_pool(ENVIRONMENT, kind, POOL_SIZE)
    say(f"pools: filling {POOL_SIZE} per type")
    wait_full(client, sizes)
    # One unmeasured claim and cold start per type (first connections, imports).
    for kind in controller.KINDS:
        for start in (from_pool, cold):
            client.stop_backend(start(client, kind)[1].id)
        wait_full(client, sizes)

    cases: list[tuple[BackendType, str] | str] = [
        (kind, way) for kind in controller.KINDS for way in ("pool", "cold")
    ]
    floors = ["floor", "network floor"]
    order = [case for case in [*cases, *floors] for _ in range(args.starts)]
    random.Random(args.seed).shuffle(order)
    say(f"pools: {len(order)} measured starts, shuffled")
    for case in order:
        wait_full(client, sizes)
        if case == "floor":
            times.floor.append(controller.container_floor(image, ctl.run))
            continue
        if case == "network floor":
            network = f"beephost-{ctl.name}-offline"  # the pools' members made it
            seconds = controller.container_floor(image, ctl.run, network)
            times.network_floor.append(seconds)
            continue
        assert not isinstance(case, str)
        kind, way = case
        seconds, backend = (from_pool if way == "pool" else cold)(client, kind)
        if way == "cold":
            times.cold_with_code += mounts_code(backend)
        client.stop_backend(backend.id)
        (times.pooled if way == "pool" else times.cold).setdefault(kind, []).append(
            seconds
        )

    say(f"pools: idle memory of a member per type, after {args.idle:g} s")
    times.idle = idle_memory(client, ctl, image, args.idle)

    for kind in controller.KINDS:
        client.set_pool(ENVIRONMENT, kind, 0)
    try:
        measure_bursts(client, ctl, args, say, times)
    except RuntimeError as exc:  # a sandbox that never answered: say so, keep the rest
        times.burst_failed = str(exc)
        say(f"pools: the burst did not finish: {exc}")
    return times


def measure_bursts(
    client: ControllerClient,
    ctl: controller.Controller,
    args: argparse.Namespace,
    say: Callable[[str], None],
    times: PoolTimes,
) -> None:
    client.set_pool(ENVIRONMENT, "http", args.burst)
    say(f"pools: filling a pool of {args.burst} http backends")
    wait_full(client, {"http": args.burst})
    times.burst_pooled, claimed = burst(
        ctl.url, args.burst, lambda own: from_pool(own, "http", strict=False)
    )
    times.burst_hits = sum(b.claimed_at is not None for b in claimed)
    client.set_pool(ENVIRONMENT, "http", 0)
    stop_all(client, claimed)
    wait_full(client, {"http": 0})
    say(f"pools: {args.burst} cold http starts at once")
    times.burst_cold, started = burst(
        ctl.url, args.burst, lambda own: cold(own, "http")
    )
    stop_all(client, started)


def idle_memory(
    client: ControllerClient, ctl: controller.Controller, image: str, idle_s: float
) -> memory.Idle:
    engine = docker.from_env()
    floor = memory.start_floor(engine, image, ctl.run)
    try:
        time.sleep(idle_s)
        read = {"floor": memory.read_container("floor", floor, 4)}
        for kind in controller.KINDS:
            member = next(
                b
                for b in client.backends()
                if b.pooled and b.type == kind and b.status == "ready"
            )
            assert member.container_id is not None
            container = engine.containers.get(member.container_id)
            read[kind] = memory.read_container(kind, container, 4)
        return memory.Idle(idle_s, read.pop("floor"), read)
    finally:
        with contextlib.suppress(Exception):
            floor.remove(force=True, v=True)
        engine.close()


def report(times: PoolTimes) -> None:
    floor = statistics.median(times.floor)
    cold_starts = sum(len(found) for found in times.cold.values())
    print(
        f"\ncode volumes: {times.code_volumes} on storage driver {times.driver}; "
        f"{times.cold_with_code} of the {cold_starts} cold starts mounted them"
    )
    print(f"\nstart-to-ready (request to 1+1 answered), p50 of {len(times.floor)}")
    print("| case | p50 ms | max ms | x floor | goal |")
    print("|---|---:|---:|---:|---|")
    print(
        f"| container floor (docker run) | {floor * 1e3:.0f} | "
        f"{max(times.floor) * 1e3:.0f} | 1.00x | |"
    )
    network_floor = statistics.median(times.network_floor)
    print(
        f"| network floor (docker run, offline network, a published port) | "
        f"{network_floor * 1e3:.0f} | {max(times.network_floor) * 1e3:.0f} | "
        f"{network_floor / floor:.2f}x | |"
    )
    for kind in controller.KINDS:
        pooled = times.pooled[kind]
        p50 = statistics.median(pooled)
        met = "met" if p50 < POOLED_GOAL_S else "NOT met"
        print(
            f"| {kind} from a pool | {p50 * 1e3:.1f} | {max(pooled) * 1e3:.1f} | "
            f"{p50 / floor:.2f}x | < {POOLED_GOAL_S * 1e3:g} ms: {met} |"
        )
        cold_times = times.cold[kind]
        c50 = statistics.median(cold_times)
        met = "met" if c50 / floor <= COLD_GOAL_RATIO else "NOT met"
        print(
            f"| {kind} cold | {c50 * 1e3:.0f} | {max(cold_times) * 1e3:.0f} | "
            f"{c50 / floor:.2f}x | <= {COLD_GOAL_RATIO:g}x floor: {met} |"
        )
    print(f"\n{times.burst} http sandboxes requested at once, until all answered")
    if times.burst_failed is not None:
        print(f"did not finish: {times.burst_failed}")
    else:
        report_bursts(times)
    if times.idle is not None:
        report_idle(times.idle)


def report_bursts(times: PoolTimes) -> None:
    print("| case | seconds | x pool |")
    print("|---|---:|---:|")
    print(
        f"| from a pool of {times.burst} ({times.burst_hits} served by it) | "
        f"{times.burst_pooled:.2f} | 1.0x |"
    )
    print(
        f"| cold | {times.burst_cold:.2f} | "
        f"{times.burst_cold / times.burst_pooled:.1f}x |"
    )


def report_idle(idle: memory.Idle) -> None:
    print(f"\nidle memory of a pool member after {idle.idle_s:g} s (docker stats)")
    print("| container | MiB | anon MiB | active file MiB | x floor | goal |")
    print("|---|---:|---:|---:|---:|---|")
    base = idle.floor.usage
    print(
        f"| floor (python3 sleeping) | {memory.mib(base.used)} | "
        f"{memory.mib(base.anon)} | {memory.mib(base.active_file)} | 1.0x | |"
    )
    for name, found in idle.backends.items():
        usage = found.usage
        met = "met" if usage.used < MEMORY_GOAL_MIB * memory.MIB else "NOT met"
        print(
            f"| {name} member | {memory.mib(usage.used)} | {memory.mib(usage.anon)} "
            f"| {memory.mib(usage.active_file)} | {usage.used / base.used:.1f}x | "
            f"< {MEMORY_GOAL_MIB:g} MiB: {met} |"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--starts", type=int, default=5, help="starts per type and way")
    parser.add_argument("--burst", type=int, default=20, help="sandboxes at once")
    parser.add_argument("--idle", type=float, default=10.0, help="idle seconds")
    parser.add_argument("--seed", type=int, default=None, help="shuffle seed")
    parser.add_argument(
        "--code-volumes",
        choices=("auto", "on", "off"),
        default="auto",
        help="the controller's CODE_VOLUMES setting",
    )
    return known_args(parser, argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return controller.bench_main(
        lambda ctl, client, _, say: measure(client, ctl, args, say),
        report,
        {"CODE_VOLUMES": args.code_volumes},
    )


if __name__ == "__main__":
    entry(main)
