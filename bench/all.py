"""Every benchmark in one run, reported in one table.

    bench/run [--quick] [--seconds S] [--pin] [--seed N] ...   (uv run python bench/all.py)

1. ROUND TRIP, 1 client: bench/transports.py's servers and harness (all started at once,
   shuffled interleaved blocks): ``1+1`` through the raw Unix-socket floor, the pipe
   backend, the two-hop floor (bench/_relay_server.py), RPyC, bare FastAPI, its two-hop
   floor, uvicorn's (a plain ASGI endpoint, bench/_bare_asgi.py) and the HTTP backend,
   bare grpcio, its two-hop floor and the gRPC backend, and
   a Jupyter kernel's execute (a two-hop floor: the leanest server of that wire and
   framework awaiting ``eval`` in one worker process, bench/_worker_hop.py); p50 and
   p99 as ratios to the floor, p50 as "x faster than Jupyter", each backend beside its
   peer and its two-hop floor, and each two-hop floor beside the peer (no backend that
   keeps the hop can be faster than its floor); the hop's own cost on each wire (two-hop
   floor minus the same server without the worker) beside the margin each peer goal
   leaves (a goal whose margin the hop alone exceeds cannot be met by a backend that
   keeps the hop). Interleaved with them, bench/plots.py's
   cases: a 640x480 matplotlib PNG returned through the SDK of each transport, beside a
   Jupyter kernel with matplotlib inline doing the same, as "x faster than Jupyter".
2. THROUGHPUT, ``--clients`` (8) client processes at once per server, the same servers
   still up, blocks in shuffled rounds; req/s as a ratio to the floor's with as many
   clients. The backends' clients share the default session (one worker, which runs
   one request at a time by design); each backend is measured a second time with a
   session per client (a worker each). Beside each, its peer's req/s (goal >= 1x);
   each two-hop floor's (one worker fed without waiting) beside its peer's.
3. CONTROLLER: bench/controller.py on the local Docker engine: start-to-ready per
   backend type beside the ``docker run`` container floor and a Jupyter kernel's spawn,
   environment re-create and ensure, a new fastapi environment's build.
4. IDLE MEMORY: bench/memory.py with the same controller: each backend type's container
   after ``--idle`` s idle, as ``docker stats`` counts it, beside a hardened
   ``python3 sleep`` floor container, and where it goes (server vs workers).
5. FILES: bench/files.py with the same controller: a ``--file-mib`` (100) MiB file into
   each backend type's workspace and back through the SDK, as a ratio to ``docker cp``
   of the same file into and out of the same container, in the same rounds.
6. INSTALL: bench/install.py with the same controller: ``tabulate`` into a running
   http backend, the wheel pool warm, beside ``uv pip install --target`` on the host.
7. WARM POOLS: bench/pools.py with the same controller: start-to-ready per type from a
   pool and cold, beside the container floor; ``--burst`` (20) http sandboxes at once
   from a pool and cold; the idle memory of a pool member per type.
8. MCP: bench/mcp_roundtrip.py: a ``tools/call`` of ``run_python("1+1")`` over stdio
   on a fixed backend process beside the same run through the SDK (the MCP layer's own
   cost), and, with the same controller, a new MCP session's ``initialize`` and first
   call over streamable HTTP (its pool claim included) beside the SDK's claim from the
   same warm http pool.
9. EGRESS: bench/egress.py on a controller of its own whose egress proxy is on a fake
   internet: p50 of an HTTPS GET (a new connection each) from a sandbox to a local test
   server through the proxy, end-to-end TLS and intercepted (a secret put in), beside
   the same with full network; the proxy's memory idle and with ``--egress-held`` (100)
   connections held from several sandboxes.

Every ratio is to a baseline measured in the same run (shared/research/platform.md,
"Benchmarking on these machines"). ``--quick``: short blocks, 2 starts per type, 2
re-creates, no fastapi build (a few minutes, mostly the run's own backend images).
The table is printed last and written to build/bench.md.
"""

import argparse
import multiprocessing
import os
import platform
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from bench import (
    _harness,
    controller,
    egress,
    files,
    install,
    mcp_roundtrip,
    memory,
    plots,
    pools,
    transports,
)
from bench._harness import Result, Run, Spec
from bench._options import bench_parser
from bench.pipe_roundtrip import ClientGroup

OUTPUT = Path(__file__).resolve().parent.parent / "build" / "bench.md"
THROUGHPUT = (  # the servers loaded with many clients; the floor is the baseline
    "floor",
    "pipe-backend",
    "relay",
    "rpyc",
    *transports.PORT_CASES,
)
PEERS = (  # (ours, its peer, the goal's limit on ours ÷ peer: issue 33's)
    ("pipe-backend", "rpyc", 1.0),
    ("http-backend", "fastapi-bare", 1.1),
    ("grpc-backend", "grpc-bare", 1.2),
)
#: Each peer's two-hop floor (the leanest server of its wire and framework awaiting
#: ``eval`` in one worker process) and the one-hop server that floor adds the hop to:
#: for RPyC's wire, the raw socket servers. No backend that keeps the hop can be
#: faster than its two-hop floor.
TWO_HOP = {
    "rpyc": ("relay", "floor"),
    "fastapi-bare": ("fastapi-bare-hop", "fastapi-bare"),
    "grpc-bare": ("grpc-bare-hop", "grpc-bare"),
}
#: Further two-hop floors beside a peer: the HTTP backend answers its hot routes on
#: uvicorn past FastAPI, so its floor is uvicorn's (a plain ASGI endpoint + worker).
MORE_FLOORS = {"fastapi-bare": ("asgi-bare-hop",)}


def two_hop_floors(peer: str) -> tuple[str, ...]:
    """Every two-hop floor beside ``peer``: its framework's first."""
    return (TWO_HOP[peer][0], *MORE_FLOORS.get(peer, ()))


#: Throughput cases of our backends with a session per client (the backend name, then
#: a suffix); the plain cases share the default session. A session runs one request
#: at a time by design (like a Jupyter kernel), so the two measure different things:
#: one worker's turnaround, and the server spreading load over workers and cores.
SESSIONS = "sessions"
BACKEND_CASES = transports.BACKEND_CASES
SESSION_CASES = BACKEND_CASES
THROUGHPUT_PEERS = (  # (ours, its peer): goal ours ≥ 1.0x the peer's req/s
    ("pipe-backend", "rpyc"),
    (f"pipe-backend {SESSIONS}", "rpyc"),
    ("http-backend", "fastapi-bare"),
    (f"http-backend {SESSIONS}", "fastapi-bare"),
    ("grpc-backend", "grpc-bare"),
    (f"grpc-backend {SESSIONS}", "grpc-bare"),
)
LABELS = {
    "floor": "floor (raw UDS socket)",
    "relay": "two-hop floor (relay + worker)",
    "fastapi-bare-hop": "FastAPI's two-hop floor (bare endpoint + worker)",
    "grpc-bare-hop": "grpc.aio's two-hop floor (bare Evaluate + worker)",
    "asgi-bare-hop": "uvicorn's two-hop floor (plain ASGI endpoint + worker)",
    "jupyter": "Jupyter kernel execute",
}
FULL = {  # the profile's defaults; a flag given wins
    "seconds": 3.0,
    "warmup": 0.5,
    "throughput_seconds": 3.0,
    "starts": 5,
    "recreates": controller.RECREATES,
    "file_mib": 100,
    "file_rounds": 3,
    "installs": 5,
    "burst": 20,
    "mcp_calls": 300,
    "mcp_sessions": 10,
    "egress_requests": 200,
    "egress_held": 100,
}
QUICK = {
    "seconds": 0.5,
    "warmup": 0.2,
    "throughput_seconds": 0.5,
    "starts": 2,
    "recreates": 2,
    "file_mib": 16,
    "file_rounds": 1,
    "installs": 2,
    "burst": 5,
    "mcp_calls": 60,
    "mcp_sessions": 3,
    "egress_requests": 40,
    "egress_held": 20,
}
Say = Callable[[str], None]


@dataclass
class Row:
    section: str
    case: str
    value: str
    unit: str
    ratio: str = "-"
    baseline: str = "-"
    goal: str = ""


# --------------------------------------------------------------------------------------
# 1. and 2. round trips and throughput


@dataclass
class Load:
    """One server under ``clients`` client processes."""

    spec: Spec
    group: ClientGroup
    requests: int = 0
    wall_ns: int = 0
    sessions: bool = False  # a session per client (else all share the default one)

    @property
    def name(self) -> str:
        return f"{self.spec.name} {SESSIONS}" if self.sessions else self.spec.name

    @property
    def rps(self) -> float:
        return self.requests / (self.wall_ns / 1e9)


def throughput(
    specs: list[Spec], args: argparse.Namespace, rng: random.Random
) -> list[Load]:
    """Every THROUGHPUT server under ``args.clients`` clients, in shuffled rounds."""
    # Python 3.11's forkserver drops its "__main__" preload (it asks for the wrong
    # key), so each client would import this script's modules anew, ~1 s each.
    multiprocessing.get_context("forkserver").set_forkserver_preload(["bench.all"])
    loads: list[Load] = []
    try:
        chosen = [(spec, False) for spec in specs if spec.name in THROUGHPUT]
        chosen += [(spec, True) for spec in specs if spec.name in SESSION_CASES]
        for spec, sessions in rng.sample(chosen, len(chosen)):
            # forkserver: this process has used gRPC, so its children must not fork
            make = spec.session_client if sessions else spec.client
            assert make is not None, f"{spec.name} has no session client"
            group = ClientGroup(make, args.clients, method="forkserver")
            loads.append(Load(spec, group, sessions=sessions))
            block(load=loads[-1], count=args.throughput_block)  # warm-up
        budget = args.throughput_seconds * 1e9
        while pending := [load for load in loads if load.wall_ns < budget]:
            rng.shuffle(pending)
            for load in pending:
                latencies, wall = block(load, args.throughput_block)
                load.requests += len(latencies)
                load.wall_ns += wall
        loads.sort(key=lambda load: (THROUGHPUT.index(load.spec.name), load.sessions))
        return loads
    finally:
        for load in loads:
            load.group.close()


def block(load: Load, count: int) -> tuple[list[int], int]:
    try:
        return load.group.block(count)
    except RuntimeError as exc:
        raise RuntimeError(f"{load.name} x{len(load.group.processes)}: {exc}") from exc


def round_trips(
    args: argparse.Namespace, say: Say, python: str
) -> tuple[Run, list[Load]]:
    """bench/transports.py's and bench/plots.py's cases in one run (``python``: the
    plotting interpreter); the throughput rows while their servers are up."""
    loads: list[Load] = []

    def during(specs: list[Spec], rng: random.Random) -> None:
        say(f"throughput: {args.clients} clients per server")
        loads.extend(throughput(specs, args, rng))

    affinity = os.sched_getaffinity(0)
    try:
        run = _harness.run(
            args,
            lambda tmp: [*transports.build(tmp), *plots.build(tmp, python)],
            "bhb-all-",
            during,
        )
    finally:
        os.sched_setaffinity(0, affinity)  # --pin is for these sections only
    return run, loads


# --------------------------------------------------------------------------------------
# 3. and 4. the controller and idle memory


def controller_args(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(
        starts=args.starts,
        warmup=args.start_warmup,
        skip_build=args.skip_build,
        recreates=args.recreates,
        seed=args.seed,
    )


@dataclass
class OnDocker:
    """What the controller sections measured."""

    results: controller.Results
    idle: memory.Idle
    speeds: dict[str, files.Speeds]
    installs: install.InstallTimes
    pools: pools.PoolTimes
    mcp_first: mcp_roundtrip.FirstCalls


def on_docker(args: argparse.Namespace, say: Say) -> OnDocker:
    with controller.running(say) as (ctl, client, tmp):
        results = controller.measure(controller_args(args), client, ctl, tmp, say)
        idle = memory.measure(
            client, ctl, "bench", results.base_image, args.idle, args.samples, say
        )
        say(f"files: {args.file_mib} MiB through each transport and docker cp")
        speeds = files.measure(
            client, "bench", tmp, args.file_mib, args.file_rounds, say
        )
        installs = install.measure(client, "bench", tmp, args.installs, say)
        pool_args = argparse.Namespace(
            starts=args.starts,
            burst=args.burst,
            idle=args.idle,
            seed=args.seed,
            code_volumes="auto",  # the controller's default, as running() starts it
        )
        warm = pools.measure(client, ctl, pool_args, say)
        say(f"mcp: {args.mcp_sessions} new MCP sessions on a warm http pool")
        client.set_pool(pools.ENVIRONMENT, "http", pools.POOL_SIZE)
        pools.wait_full(client, {"http": pools.POOL_SIZE})
        first = mcp_roundtrip.first_calls(
            ctl.url, None, pools.ENVIRONMENT, args.mcp_sessions, args.seed, tmp
        )
    return OnDocker(results, idle, speeds, installs, warm, first)


# --------------------------------------------------------------------------------------
# the table


def us(value: float) -> str:
    return f"{value:,.1f}"


def sec(value: float) -> str:
    return f"{value:.3f}"


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def label(name: str) -> str:
    return LABELS.get(name, name)


def round_trip_rows(run: Run) -> list[Row]:
    by_name = {r.name: r for r in run.results}
    floor, jupyter = by_name["floor"], by_name["jupyter"].p(0.5)
    rows = []
    for r in run.results:
        if r.name in plots.NAMES:
            continue
        p50, p99 = r.p(0.5), r.p(0.99)
        ratios, baselines, goal = [], [], ""
        if r.name != "floor":
            ratios.append(f"{p50 / floor.p(0.5):.2f}x floor")
            baselines.append(f"floor p50 {us(floor.p(0.5))} µs")
        if r.name != "jupyter":
            faster = jupyter / p50
            ratios.append(f"{faster:.1f}x faster than Jupyter")
            baselines.append(f"Jupyter p50 {us(jupyter)} µs")
            if r.name in BACKEND_CASES:  # the goal is ours; the rest are baselines
                goal = f"≥ {transports.GOAL:g}x faster than Jupyter: {met(faster >= transports.GOAL)}"
        name = label(r.name)
        rows.append(
            Row(
                "round trip",
                f"{name} p50",
                us(p50),
                "µs",
                " · ".join(ratios),
                " · ".join(baselines),
                goal,
            )
        )
        if r.name == "floor":
            rows.append(Row("round trip", f"{name} p99", us(p99), "µs", "baseline"))
        else:
            ratio = f"{p99 / floor.p(0.99):.2f}x floor"
            baseline = f"floor p99 {us(floor.p(0.99))} µs"
            rows.append(
                Row("round trip", f"{name} p99", us(p99), "µs", ratio, baseline)
            )
    return rows


def ms(value_us: float) -> str:
    return f"{value_us / 1000:,.2f}"


def plot_rows(run: Run) -> list[Row]:
    """The PNG cases as multiples of their floor (the render in-process, one raw
    socket hop) and of the Jupyter kernel's, all from the same run."""
    by_name = {r.name: r for r in run.results}
    floor, jupyter = by_name[plots.FLOOR], by_name[plots.JUPYTER]
    section = "matplotlib PNG {}x{}".format(*plots.SIZE)
    names = {plots.FLOOR: "floor: render in-process, raw UDS", plots.JUPYTER: "Jupyter"}
    rows = []
    for name in plots.NAMES:
        r = by_name[name]
        case = names.get(name, f"{name.removeprefix('png-')} via SDK")
        for q in (0.5, 0.99):
            cell = f"p{q * 100:g}"
            ratios, baselines, goal = [], [], ""
            if name != plots.FLOOR:
                ratios.append(f"{r.p(q) / floor.p(q):.2f}x floor")
                baselines.append(f"floor {cell} {ms(floor.p(q))} ms")
            if name != plots.JUPYTER:
                faster = jupyter.p(q) / r.p(q)
                ratios.append(f"{faster:.2f}x faster than Jupyter")
                baselines.append(f"Jupyter {cell} {ms(jupyter.p(q))} ms")
                if q == 0.5 and name != plots.FLOOR:
                    goal = f"≥ {plots.GOAL:g}x faster than Jupyter: {met(faster >= plots.GOAL)}"
            rows.append(
                Row(
                    section,
                    f"{case} {cell}" + (f" (n={len(r.latencies)})" if q == 0.5 else ""),
                    ms(r.p(q)),
                    "ms",
                    " · ".join(ratios) or "baseline",
                    " · ".join(baselines) or "-",
                    goal,
                )
            )
    return rows


def peer_rows(run: Run) -> list[Row]:
    """Each backend beside its peer, and beside its two-hop floor (what its own code
    costs above the hop); each two-hop floor beside the peer (where that floor is
    already over the goal's limit, no backend that keeps the hop can meet the goal)."""
    by_name = {r.name: r for r in run.results}
    rows = []
    for ours, peer, limit in PEERS:
        mine, theirs = by_name[ours].p(0.5), by_name[peer].p(0.5)
        rows.append(
            Row(
                "round trip vs peer",
                f"{ours} p50 vs {peer}",
                us(mine),
                "µs",
                f"{mine / theirs:.2f}x {peer}",
                f"{peer} p50 {us(theirs)} µs",
                f"≤ {limit:g}x {peer}: {met(mine / theirs <= limit)}",
            )
        )
        for two_hop in two_hop_floors(peer):
            if two_hop not in by_name:
                continue
            floor = by_name[two_hop].p(0.5)
            rows.append(
                Row(
                    "round trip vs peer",
                    f"{label(two_hop)} p50 vs {peer}",
                    us(floor),
                    "µs",
                    f"{floor / theirs:.2f}x {peer}",
                    f"{peer} p50 {us(theirs)} µs",
                    f"{ours}'s goal reachable with the hop on this server: "
                    f"{'yes' if floor / theirs <= limit else 'no'}",
                )
            )
            rows.append(
                Row(
                    "round trip vs peer",
                    f"{ours} p50 vs {two_hop} (our code above that floor)",
                    us(mine),
                    "µs",
                    f"{mine / floor:.2f}x {two_hop}",
                    f"{two_hop} p50 {us(floor)} µs",
                )
            )
    rows.extend(hop_rows(by_name))
    return rows


def hop_rows(by_name: dict[str, Result]) -> list[Row]:
    """What the hop alone costs on each wire (its two-hop floor's p50 minus the same
    server's without the worker) against what each goal leaves over its peer ((limit -
    1) x the peer's p50). Where the hop costs more than the margin, no backend that
    keeps the hop can meet that goal, however lean its code."""
    rows = []
    for ours, peer, limit in PEERS:
        two_hop, one_hop = TWO_HOP[peer]
        hop = by_name[two_hop].p(0.5) - by_name[one_hop].p(0.5)
        margin = (limit - 1) * by_name[peer].p(0.5)
        rows.append(
            Row(
                "the hop vs each goal",
                f"hop's own cost ({two_hop} - {one_hop}) vs the margin {ours}'s "
                "goal leaves",
                us(hop),
                "µs",
                f"margin {us(margin)} µs",
                f"≤ {limit:g}x {peer} p50",
                f"the hop fits the margin: {'yes' if hop <= margin else 'no'}",
            )
        )
    return rows


def throughput_rows(loads: list[Load], clients: int) -> list[Row]:
    floor = next(load for load in loads if load.spec.name == "floor").rps
    section = f"throughput, {clients} clients"
    rows = []
    for load in loads:
        is_floor = load.spec.name == "floor"
        rows.append(
            Row(
                section,
                f"{label(load.spec.name)} x{clients}{_sharing(load)} "
                f"({load.requests:,} requests)",
                f"{load.rps:,.0f}",
                "req/s",
                "baseline" if is_floor else f"{load.rps / floor:.2f}x floor",
                "-" if is_floor else f"floor x{clients} {floor:,.0f} req/s",
            )
        )
    by_name = {load.name: load for load in loads}
    floors = [(peer, two_hop) for peer in TWO_HOP for two_hop in two_hop_floors(peer)]
    for peer, two_hop in floors:
        if two_hop not in by_name or peer not in by_name:
            continue
        # A two-hop floor feeds its one worker without waiting (requests queued in
        # order), which a session does not: it runs one request at a time by design.
        hop_rps, peer_rps = by_name[two_hop].rps, by_name[peer].rps
        rows.append(
            Row(
                "throughput vs peer",
                f"{label(two_hop)} x{clients}, one worker fed without waiting "
                f"vs {peer}",
                f"{hop_rps:,.0f}",
                "req/s",
                f"{hop_rps / peer_rps:.2f}x {peer}",
                f"{peer} x{clients} {peer_rps:,.0f} req/s",
            )
        )
    for ours, peer in THROUGHPUT_PEERS:
        if ours not in by_name or peer not in by_name:
            continue
        mine, theirs = by_name[ours], by_name[peer]
        ratio = mine.rps / theirs.rps
        rows.append(
            Row(
                "throughput vs peer",
                f"{mine.spec.name} x{clients}{_sharing(mine)} vs {peer}",
                f"{mine.rps:,.0f}",
                "req/s",
                f"{ratio:.2f}x {peer}",
                f"{peer} x{clients} {theirs.rps:,.0f} req/s",
                f"≥ 1x {peer}: {met(ratio >= 1.0)}",
            )
        )
    return rows


def _sharing(load: Load) -> str:
    """What a backend's clients share: the default session, or nothing (their own)."""
    if load.spec.name not in BACKEND_CASES:
        return ""
    return ", a session each" if load.sessions else ", one shared session"


def start_rows(res: controller.Results) -> list[Row]:
    section = "start-to-ready"
    floor, jupyter = statistics.median(res.floor), statistics.median(res.jupyter)
    floor_cell = f"container floor {sec(floor)} s"
    rows = [
        Row(
            section,
            f"container floor: docker run python3 -c pass (p50 of {len(res.floor)})",
            sec(floor),
            "s",
            "baseline",
        ),
        Row(
            section,
            f"Jupyter kernel: spawn -> first execute reply (p50 of {len(res.jupyter)})",
            sec(jupyter),
            "s",
            f"{jupyter / floor:.2f}x container floor",
            floor_cell,
        ),
    ]
    for kind in controller.KINDS:
        starts = res.starts[kind]
        answered = statistics.median(x.answered for x in starts)
        ready = statistics.median(x.ready for x in starts)
        goal = f"< {controller.START_GOAL:g} s: {met(answered < controller.START_GOAL)}"
        rows.append(
            Row(
                section,
                f"{kind}: start_backend -> 1+1 answered (p50 of {len(starts)})",
                sec(answered),
                "s",
                f"{answered / floor:.2f}x container floor · {answered / jupyter:.2f}x Jupyter",
                f"{floor_cell} · Jupyter {sec(jupyter)} s",
                goal,
            )
        )
        rows.append(
            Row(
                section,
                f"{kind}: start_backend -> controller ready_at (p50)",
                sec(ready),
                "s",
                f"{ready / floor:.2f}x container floor",
                floor_cell,
            )
        )
    return rows


def environment_rows(res: controller.Results) -> list[Row]:
    section = "environments"
    assert res.six is not None
    assert res.setup is not None
    ensure = statistics.median(res.ensure)
    recreate = statistics.median(b.seconds for b in res.recreate)
    ensure_cell = f"ensure {sec(ensure)} s"
    rows = [
        Row(
            section,
            f"ensure_environment of an existing env, PUT (p50 of {len(res.ensure)})",
            sec(ensure),
            "s",
            "baseline",
        ),
        Row(
            section,
            f"re-create env with a ready one's requirements -> job succeeded (p50 of {len(res.recreate)})",
            sec(recreate),
            "s",
            f"{recreate / ensure:.2f}x ensure",
            ensure_cell,
            f"< {controller.RECREATE_GOAL:g} s: {met(recreate < controller.RECREATE_GOAL)}",
        ),
        Row(
            section,
            "new env six==1.17.0: resolve + build",
            sec(res.six.seconds),
            "s",
            "baseline",
        ),
    ]
    if res.fastapi is not None:
        pool = "warm" if res.pool_new == 0 else f"{res.pool_new} wheels downloaded"
        build = res.fastapi.seconds
        rows.append(
            Row(
                section,
                f"new env fastapi, uvicorn[standard] -> job succeeded (wheel pool {pool})",
                sec(build),
                "s",
                f"{build / res.six.seconds:.2f}x six build",
                f"six build {sec(res.six.seconds)} s",
                f"< {controller.BUILD_GOAL:g} s: {met(build < controller.BUILD_GOAL)}",
            )
        )
    rows.append(
        Row(
            section,
            "setup: empty env + the run's 3 backend images",
            sec(res.setup.seconds),
            "s",
        )
    )
    return rows


def memory_rows(idle: memory.Idle) -> list[Row]:
    section = f"idle memory ({idle.idle_s:g} s idle)"
    floor = idle.floor.usage.used
    rows = [
        Row(
            section,
            "floor container: python3 sleep, hardened (docker stats)",
            memory.mib(floor),
            "MiB",
            "baseline",
        )
    ]
    for kind, found in idle.backends.items():
        rows += container_rows(section, kind, found, floor)
    return rows


PARTS = {  # Split's fields, as the table names them
    "server": "server process",
    "workers": "worker process(es)",
    "other": "other process(es), e.g. a health check exec",
}


def container_rows(
    section: str, kind: str, found: memory.Reading, floor: int
) -> list[Row]:
    """One backend container: its total, the cgroup's split, its processes'."""
    mib, used = memory.mib, found.usage.used
    ok = used < memory.GOAL_MIB * memory.MIB
    container = f"{kind} container {mib(used)} MiB"
    anon, active = found.usage.anon, found.usage.active_file
    rows = [
        Row(
            section,
            f"{kind} backend container (docker stats)",
            mib(used),
            "MiB",
            f"{used / floor:.2f}x floor",
            f"floor {mib(floor)} MiB",
            f"< {memory.GOAL_MIB:g} MiB: {met(ok)}",
        ),
        Row(
            section,
            f"{kind}: cgroup anon / active file cache",
            f"{mib(anon)} / {mib(active)}",
            "MiB",
            f"{anon / used:.2f}x / {active / used:.2f}x container",
            container,
        ),
    ]
    for part, name in PARTS.items():
        procs: list[memory.Proc] = getattr(found.split, part)
        if procs:
            pss = memory.total(procs, "pss")
            rows.append(
                Row(
                    section,
                    f"{kind}: {len(procs)} {name} RSS / PSS / private / anon",
                    memory.memory_cells(procs),
                    "MiB",
                    "-" if pss is None else f"PSS {pss / used:.2f}x container",
                    container,
                )
            )
    return rows


def file_rows(speeds: dict[str, files.Speeds], mib: int) -> list[Row]:
    section = f"files, {mib} MiB"
    rows = []
    for kind in controller.KINDS:
        ours, floor = speeds[kind], speeds[f"{kind}: docker cp"]
        for direction in ("upload", "download"):
            value = statistics.median(getattr(ours, direction))
            base = statistics.median(getattr(floor, direction))
            rows.append(
                Row(
                    section,
                    f"{kind} {direction} (SDK)",
                    f"{value:.0f}",
                    "MiB/s",
                    f"{value / base:.2f}x docker cp",
                    f"docker cp {base:.0f} MiB/s",
                    f">= {files.GOAL}x: {met(value / base >= files.GOAL)}",
                )
            )
    return rows


def install_rows(times: install.InstallTimes) -> list[Row]:
    section = "install at run time"
    value = statistics.median(times.installs)
    floor = statistics.median(times.baseline)
    return [
        Row(
            section,
            f"{install.PACKAGE} into a running http backend, wheel cached",
            sec(value),
            "s",
            f"{value / floor:.1f}x uv --target",
            f"uv pip install --target {sec(floor)} s",
            f"< {install.GOAL_S:g} s: {met(value < install.GOAL_S)}",
        ),
        Row(
            section,
            "first import after it, in a session opened before",
            ms(statistics.median(times.imports) * 1e6),
            "ms",
        ),
    ]


def pool_rows(times: pools.PoolTimes) -> list[Row]:
    section = "warm pools"
    floor = statistics.median(times.floor)
    floor_cell = f"container floor {sec(floor)} s"
    rows = []
    for kind in controller.KINDS:
        pooled = statistics.median(times.pooled[kind])
        cold = statistics.median(times.cold[kind])
        rows.append(
            Row(
                section,
                f"{kind}: start_backend -> 1+1 answered, from a pool "
                f"(p50 of {len(times.pooled[kind])})",
                ms(pooled * 1e6),
                "ms",
                f"{pooled / cold:.3f}x cold · {pooled / floor:.3f}x container floor",
                f"cold {sec(cold)} s · {floor_cell}",
                f"< {pools.POOLED_GOAL_S * 1e3:g} ms: {met(pooled < pools.POOLED_GOAL_S)}",
            )
        )
        ok = cold / floor <= pools.COLD_GOAL_RATIO
        rows.append(
            Row(
                section,
                f"{kind}: the same start, cold (p50 of {len(times.cold[kind])})",
                sec(cold),
                "s",
                f"{cold / floor:.2f}x container floor",
                floor_cell,
                f"<= {pools.COLD_GOAL_RATIO:g}x floor: {met(ok)}",
            )
        )
    if times.burst_failed is None:
        rows.append(
            Row(
                section,
                f"{times.burst} http sandboxes at once, from a pool "
                f"({times.burst_hits} served by it), until all answered",
                sec(times.burst_pooled),
                "s",
                f"{times.burst_pooled / times.burst_cold:.3f}x cold",
                f"cold {sec(times.burst_cold)} s",
            )
        )
    else:
        rows.append(
            Row(
                section,
                f"{times.burst} http sandboxes at once: did not finish "
                f"({times.burst_failed})",
                "-",
                "s",
            )
        )
    if times.idle is not None:
        base = times.idle.floor.usage.used
        for name, found in times.idle.backends.items():
            used = found.usage.used
            rows.append(
                Row(
                    section,
                    f"{name}: idle pool member (anon {memory.mib(found.usage.anon)} "
                    "MiB)",
                    memory.mib(used),
                    "MiB",
                    f"{used / base:.1f}x floor",
                    f"floor {memory.mib(base)} MiB",
                    f"< {pools.MEMORY_GOAL_MIB:g} MiB: "
                    f"{met(used < pools.MEMORY_GOAL_MIB * memory.MIB)}",
                )
            )
    return rows


def mcp_rows(
    steady: dict[str, list[float]], first: mcp_roundtrip.FirstCalls | None
) -> list[Row]:
    """The steady call's row; the first call's two with Docker (a pool to claim from)."""
    section = "MCP server"
    mcp, execute, stream = (statistics.median(v) for v in steady.values())
    steady_row = Row(
        section,
        "tools/call run_python('1+1'), stdio, a fixed http backend "
        f"(p50 of {len(next(iter(steady.values())))})",
        ms(mcp * 1e6),
        "ms",
        f"{mcp / execute:.2f}x SDK execute · {mcp / stream:.2f}x SDK stream",
        f"execute {ms(execute * 1e6)} ms · stream {ms(stream * 1e6)} ms",
    )
    if first is None:
        return [steady_row]
    session = statistics.median(first.session)
    claim = statistics.median(first.sdk_claim)
    first_only = statistics.median(first.first)
    second = statistics.median(first.second)
    return [
        steady_row,
        Row(
            section,
            "new session over HTTP: initialize + first run_python, pool claim "
            f"included (p50 of {len(first.session)})",
            ms(session * 1e6),
            "ms",
            f"{session / claim:.2f}x SDK claim",
            f"SDK start_backend from the pool -> 1+1 {ms(claim * 1e6)} ms",
        ),
        Row(
            section,
            "its first call alone (claim, connect, interpreter, run)",
            ms(first_only * 1e6),
            "ms",
            f"{first_only / second:.1f}x the second call",
            f"second call in the session {ms(second * 1e6)} ms",
        ),
    ]


def egress_rows(res: egress.Results) -> list[Row]:
    section = "egress (HTTPS from a sandbox)"
    return [
        Row(section, case, value, unit, ratio, "full network" if ratio != "-" else "-")
        for case, value, unit, ratio in egress.rows(res)
    ]


def markdown(rows: list[Row]) -> str:
    headers = [
        "section",
        "case",
        "value",
        "unit",
        "ratio vs baseline",
        "baseline",
        "goal",
    ]
    lines = ["| " + " | ".join(headers) + " |", "|---|---|--:|---|---|---|---|"]
    for row in rows:
        cells = [
            row.section,
            row.case,
            row.value,
            row.unit,
            row.ratio,
            row.baseline,
            row.goal,
        ]
        lines.append(
            "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    add = parser.add_argument
    add(
        "--quick",
        action="store_true",
        help="smoke run: short blocks, 2 starts, no fastapi build",
    )
    add("--seconds", type=float, help="round trip: measured s per case (3; quick 0.5)")
    add("--warmup", type=float, help="round trip: warm-up s per case (0.5; quick 0.2)")
    add("--block", type=int, default=200, help="round trip: requests per block")
    add(
        "--clients", type=int, default=8, help="throughput: client processes per server"
    )
    add(
        "--throughput-seconds",
        type=float,
        help="throughput: s per server (3; quick 0.5)",
    )
    add(
        "--throughput-block",
        type=int,
        default=100,
        help="throughput: requests per client per block",
    )
    add("--pin", action="store_true", help="round trip and throughput on one CPU")
    add(
        "--no-docker",
        dest="docker",
        action="store_false",
        help="sections 1 and 2 only (round trip, throughput): no Docker needed",
    )
    add("--cpu", type=int, default=None, help="the CPU for --pin")
    add("--seed", type=int, default=None, help="shuffle seed")
    add("--starts", type=int, help="measured starts per backend type (5; quick 2)")
    add("--start-warmup", type=int, default=1, help="unmeasured starts per type first")
    add("--recreates", type=int, help="environment re-creates (5; quick 2)")
    add(
        "--skip-build",
        action="store_true",
        help="skip the fastapi build (quick: skipped)",
    )
    add("--idle", type=float, default=10.0, help="idle s before reading memory")
    add("--file-mib", type=int, help="files: the file's MiB (100; quick 16)")
    add("--file-rounds", type=int, help="files: round trips per transport (3; quick 1)")
    add("--installs", type=int, help="install: measured installs (5; quick 2)")
    add("--burst", type=int, help="warm pools: sandboxes at once (20; quick 5)")
    add("--mcp-calls", type=int, help="mcp: calls per steady case (300; quick 60)")
    add("--mcp-sessions", type=int, help="mcp: new sessions (10; quick 3)")
    add("--egress-requests", type=int, help="egress: requests per case (200; quick 40)")
    add("--egress-held", type=int, help="egress: connections held (100; quick 20)")
    add(
        "--samples", type=int, default=5, help="memory reads per container (least wins)"
    )
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.skip_build = args.skip_build or args.quick
    if args.seed is None:  # one seed, printed, for every section
        args.seed = random.randrange(1 << 32)
    return args


def preamble(
    args: argparse.Namespace,
    run: Run,
    idle: memory.Idle | None,
    took: dict[str, float],
    python: str,
) -> str:
    pinned = (
        "pinned to one CPU" if args.pin else "not pinned (ratios, not absolute times)"
    )
    sections = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in took.items())
    return "\n".join(
        [
            f"bench/all.py{' --quick' if args.quick else ''}: Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, seed {args.seed}, {time.strftime('%Y-%m-%d %H:%M')}",
            f"code under test: {_harness.code_under_test()}",
            f"round trip: {args.seconds:g} s per case in {run.rounds} shuffled rounds, {pinned}; "
            f"throughput: {args.throughput_seconds:g} s per server; "
            + (
                f"starts: {args.starts} per type; memory: cgroup {idle.floor.usage.cgroup}, "
                f"least of {args.samples} reads"
                if idle is not None
                else "--no-docker: sections 3-7 (controller, memory, files, install, "
                "pools) not run"
            ),
            f"plots: {plots.PLOT!r} under {python} ({', '.join(plots.REQUIREMENTS)}), "
            "matplotlib imported before timing",
            f"took: {sections}",
        ]
    )


def legend(run: Run) -> str:
    width = max(len(r.name) for r in run.results)
    lines = [f"- `{r.name.ljust(width)}` {r.spec.note}" for r in run.results]
    lines += [
        "- plots: our workers and the kernel share the plotting interpreter; every PNG "
        "is checked to be 640x480; the kernel's inline bbox_inches='tight' is off "
        "(it crops and draws twice), so both do the same work",
        "- throughput: each client process sends one request at a time; a backend's "
        "clients share its default session (one worker, one request at a time, by "
        "design), or, where the case says so, each opens a session of its own (a "
        "worker each); the peers serve every client in one process",
        "- container floor: `docker run --rm --network none <base image> python3 -c pass`, "
        "CLI wall time; backends start hardened, capped, without network (an http or "
        "rpc backend's port published by its relay container)",
        "- idle memory: usage - inactive_file as `docker stats`; RSS counts shared pages in "
        "every process, PSS splits them, private is each process's own, anon the heap "
        "and stacks (PSS) as opposed to mapped files; workers: the default session's "
        "and any prewarmed spare",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.docker and shutil.which("docker") is None:
        print(
            "no docker CLI: the controller sections need Docker (--no-docker skips them)",
            file=sys.stderr,
        )
        return 2
    controller.stoppable()
    began = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - began:5.0f} s] {text}", file=sys.stderr)

    python = plots.environment(say)
    say("round trips: starting every server")
    run, loads = round_trips(args, say, python)
    say(f"mcp: {args.mcp_calls} steady calls per case over stdio")
    mcp_steady = mcp_roundtrip.steady_calls(args.mcp_calls, args.seed)
    took = {"round trip + throughput": time.perf_counter() - began}
    rows = [
        *round_trip_rows(run),
        *plot_rows(run),
        *peer_rows(run),
        *throughput_rows(loads, args.clients),
    ]
    idle = None
    if args.docker:
        docker = on_docker(args, say)
        results, idle = docker.results, docker.idle
        took["controller + memory"] = (
            time.perf_counter() - began - took["round trip + throughput"]
        )
        rows += [
            *start_rows(results),
            *environment_rows(results),
            *memory_rows(idle),
            *file_rows(docker.speeds, args.file_mib),
            *install_rows(docker.installs),
            *pool_rows(docker.pools),
        ]
        say("egress: a controller of its own on a fake internet")
        egress_args = argparse.Namespace(
            requests=args.egress_requests,
            held=args.egress_held,
            holders=egress.HOLDERS,
            seed=args.seed,
        )
        rows += egress_rows(egress.measure_all(egress_args, say))
    rows += mcp_rows(mcp_steady, docker.mcp_first if args.docker else None)
    text = "\n\n".join(
        [preamble(args, run, idle, took, python), markdown(rows), legend(run)]
    )
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text + "\n")
    print(text)
    print(f"\n(written to {OUTPUT.relative_to(OUTPUT.parent.parent)})")
    return 0


if __name__ == "__main__":
    _harness.entry(main)
