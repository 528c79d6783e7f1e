"""What the load and fault tests share: backends through the controller, what a
backend container holds (sessions, handles, processes), and latency bookkeeping.

A backend's state is read from inside its container with ``docker exec``: the
``beephost_sessions`` and ``beephost_handles`` gauges of its metrics endpoint (pipe
9464, http 5678 with its token, rpc 9465, all on the container's loopback) and the
processes of the server's user (uid 10001) from /proc, the image's own health check
and a ``docker exec`` starting left out. One ``python3 -c`` per look: no tool the
image lacks.
"""

import dataclasses
import json
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from beephost_client.controller import Backend, ControllerClient
from tests.e2e.containers import docker

KINDS = ("pipe", "http", "rpc")

#: Inside the container: the core's gauges and the server user's processes, as JSON.
_PROBE = """\
import json, os, re, sys, urllib.request
kind = sys.argv[1]
# A session's worker runs worker.py, or its cached bytecode (beephost_core._bytecode).
WORKER = re.compile(rb"/beephost_core/(__pycache__/)?worker(\\.py|\\.cpython-\\d+\\.pyc)$")
port = {"pipe": 9464, "http": 5678, "rpc": 9465}[kind]
request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
token = sys.stdin.read().strip()  # the container holds only the token's digest
if kind == "http" and token:
    request.add_header("Authorization", "Bearer " + token)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
text = opener.open(request, timeout=10).read().decode()
gauges = {}
for line in text.splitlines():
    name, _, value = line.partition(" ")
    if name in ("beephost_sessions", "beephost_handles",
                "beephost_worker_spawn_seconds_sum", "beephost_worker_spawn_seconds_count"):
        gauges[name] = float(value)
processes = []
for pid in os.listdir("/proc"):
    if not pid.isdigit() or int(pid) == os.getpid():
        continue
    try:
        with open(f"/proc/{pid}/status") as f:
            status = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\\0")
        cmdline = b" ".join(argv).decode(errors="replace").strip()
    except OSError:
        continue
    if status["Uid"].split()[0] != "10001":
        continue
    if "healthcheck" in cmdline or cmdline.startswith("runc"):
        continue  # Docker's health check, or a `docker exec` (this one) starting
    processes.append({
        "state": status["State"].split()[0],
        "cmd": cmdline[:120],
        "worker": any(WORKER.search(arg) for arg in argv),
    })
print(json.dumps({"gauges": gauges, "processes": processes}))
"""


@dataclass(frozen=True)
class BackendState:
    """What one backend container holds at one moment."""

    sessions: int
    handles: int
    processes: tuple[str, ...]  # uid 10001's: "worker" or the command line of another
    zombies: int
    spawns: int = 0  # workers started since the server started
    spawn_seconds: float = 0.0  # their total start-up time

    @property
    def summary(self) -> tuple[int, int, int, int]:
        return (self.sessions, self.handles, len(self.processes), self.zombies)


def backend_state(
    docker_cli: str, container: str, kind: str, token: str | None
) -> BackendState:
    """The session and handle gauges and the processes of ``container``'s server.

    ``token`` (the HTTP backend's /metrics needs it) goes in on stdin, never in an
    argument or a variable another process could read.
    """
    out = docker(
        docker_cli,
        "exec",
        "-i",
        container,
        "python3",
        "-c",
        _PROBE,
        kind,
        stdin=token or "",
    )
    raw = json.loads(out)
    gauges = raw["gauges"]
    processes = raw["processes"]
    return BackendState(
        sessions=int(gauges["beephost_sessions"]),
        handles=int(gauges["beephost_handles"]),
        processes=tuple(
            sorted("worker" if p["worker"] else p["cmd"][:60] for p in processes)
        ),
        zombies=sum(p["state"] == "Z" for p in processes),
        spawns=int(gauges.get("beephost_worker_spawn_seconds_count", 0)),
        spawn_seconds=gauges.get("beephost_worker_spawn_seconds_sum", 0.0),
    )


def settled_state(
    docker_cli: str,
    container: str,
    kind: str,
    token: str | None,
    expected: Callable[[BackendState], bool],
    timeout: float = 30.0,
) -> BackendState:
    """Poll until ``expected(state)`` (spare workers refill and closed workers are
    reaped asynchronously); the last look at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        state = backend_state(docker_cli, container, kind, token)
        if expected(state) or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def start_backends(
    api: ControllerClient, environment: str, kinds: Iterable[str] = KINDS
) -> dict[str, Backend]:
    """One ready backend per kind, started together; each with its start token."""
    started = {kind: api.start_backend(environment, kind) for kind in kinds}  # type: ignore[arg-type]
    ready = {}
    for kind, backend in started.items():
        now = api.wait_backend(backend.id, timeout=90)
        ready[kind] = dataclasses.replace(now, token=backend.token)
    return ready


def ensure_environment(api: ControllerClient, name: str) -> str:
    """An environment without requirements, built (once per controller)."""
    env = api.create_environment(name, requirements=[])
    if env.job_id is not None:
        job = api.wait_job(env.job_id, timeout=600)
        assert job.succeeded, job.error
    assert api.environment(name).status == "ready"
    return name


# -- latency bookkeeping -------------------------------------------------------------

T = TypeVar("T")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (not empty), ``q`` in [0, 100]."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Failure:
    transport: str
    client: str
    op: str
    error: str  # type name
    message: str


@dataclass
class Recorder:
    """Latencies per (transport, op), expected outcomes and failures; thread-safe."""

    latencies: dict[tuple[str, str], list[float]] = field(
        default_factory=lambda: defaultdict(list)
    )
    expected: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    iterations: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, transport: str, op: str, seconds: float) -> None:
        with self.lock:
            self.latencies[(transport, op)].append(seconds)

    def timed(self, transport: str, op: str, fn: Callable[[], T]) -> T:
        started = time.perf_counter()
        value = fn()
        self.add(transport, op, time.perf_counter() - started)
        return value

    def expect(self, transport: str, what: str) -> None:
        with self.lock:
            self.expected[(transport, what)] += 1

    def fail(self, transport: str, client: str, op: str, exc: BaseException) -> None:
        with self.lock:
            self.failures.append(
                Failure(transport, client, op, type(exc).__name__, str(exc)[:300])
            )

    def iteration(self, transport: str) -> None:
        with self.lock:
            self.iterations[transport] += 1

    def ops(self, transport: str | None = None) -> int:
        return sum(
            len(v)
            for (t, _), v in self.latencies.items()
            if transport is None or t == transport
        )


def format_table(rec: Recorder, seconds: float, transports: Iterable[str]) -> str:
    """p50/p99/max in ms and counts per transport and op, then throughput."""
    ops = sorted({op for _, op in rec.latencies})
    lines = [
        f"{'transport':<9} {'op':<17} {'n':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    ]
    for transport in transports:
        everything: list[float] = []
        for op in ops:
            values = rec.latencies.get((transport, op), [])
            if not values:
                continue
            everything += values
            lines.append(_row(transport, op, values))
        if everything:
            lines.append(_row(transport, "(all)", everything))
    lines.append("")
    for transport in transports:
        count = rec.ops(transport)
        lines.append(
            f"{transport:<9} {count} ops, {rec.iterations[transport]} iterations in "
            f"{seconds:.0f} s: {count / seconds:.0f} ops/s; expected timeouts "
            f"{rec.expected[(transport, 'timeout')]} (state lost "
            f"{rec.expected[(transport, 'timeout_state_lost')]}), deadline raced "
            f"{rec.expected[(transport, 'deadline_raced')]}, failures "
            f"{sum(f.transport == transport for f in rec.failures)}"
        )
    total = rec.ops()
    lines.append(f"{'all':<9} {total} ops: {total / seconds:.0f} ops/s")
    return "\n".join(lines)


def _row(transport: str, op: str, values: list[float]) -> str:
    p50, p99 = percentile(values, 50) * 1e3, percentile(values, 99) * 1e3
    return (
        f"{transport:<9} {op:<17} {len(values):>7} {p50:>8.1f} {p99:>8.1f} "
        f"{max(values) * 1e3:>8.1f}"
    )


def p99_text(rec: Recorder, transport: str) -> str:
    """``op p99 12.3 ms, ...`` for the summary's case text."""
    parts = []
    for (t, op), values in sorted(rec.latencies.items()):
        if t == transport and values:
            parts.append(f"{op} {percentile(values, 99) * 1e3:.0f}")
    return "p99 ms: " + ", ".join(parts)
