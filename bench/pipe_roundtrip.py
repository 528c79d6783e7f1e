"""Round-trip latency of the pipe backend against a raw floor and RPyC classic.

    uv run python bench/pipe_roundtrip.py [--seconds S] [--pin]

Starts, at once and as separate processes, the pipe backend (two hops: server, then the
session's worker process), a raw one-hop Unix-socket JSON eval server (the FLOOR,
bench/_floor_server.py), RPyC classic over a Unix socket (bench/_rpyc_server.py) and,
unless --no-relay, the TWO-HOP FLOOR (bench/_relay_server.py: the leanest asyncio server
in front of a worker process, i.e. the pipe backend's architecture without its code).
Then evaluates ``1+1`` from one blocking client per server, in short blocks run in a
shuffled, interleaved order, so that every case sees the same machine noise; each case
is reported as a ratio to the floor measured in the same run (the absolute numbers on a
shared 2-vCPU machine move by 2x between runs, the ratios do not; see
shared/research/platform.md, "Benchmarking on these machines").
Extra rows: 4 concurrent client processes against the pipe backend (one shared default
session, and one session each), the floor, RPyC and the relay; their figure of merit is
total req/s. CPU time per request of client, server and workers comes from /proc.
"""

import argparse
import contextlib
import ctypes
import functools
import gc
import importlib.util
import json
import multiprocessing
import multiprocessing.connection
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable

import rpyc
from bench._options import bench_parser
from bench._timing import timed

BENCH_DIR = Path(__file__).resolve().parent
EXPRESSION = "1+1"
EXPECTED = 2
READY_TIMEOUT = 60.0

# --------------------------------------------------------------------------------------
# clients


def check_value(value: object) -> None:
    """Raises unless ``EXPRESSION`` evaluated to ``EXPECTED``."""
    if value != EXPECTED:
        raise RuntimeError(f"{EXPRESSION} evaluated to {value!r}")


class LineClient:
    """A raw blocking NDJSON client: sendall, then a buffered readline."""

    def __init__(self, path: str, session: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.reader = self.sock.makefile("rb", buffering=1 << 16)
        self.next_id = 0
        self.session = session

    def call(self, message: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        message = {"id": self.next_id, **message}
        self.sock.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        reply: dict[str, Any] = json.loads(self.reader.readline())
        if reply.get("id") != self.next_id or "result" not in reply:
            raise RuntimeError(f"unexpected reply {reply!r} to {message!r}")
        result: dict[str, Any] = reply["result"]
        return result

    def open_session(self) -> None:
        self.session = self.call({"type": "session.open", "params": {}})["session"]

    def check(self) -> None:
        check_value(self.call({"type": "eval", "params": self._params()})["value"])

    def _params(self) -> dict[str, str]:
        params = {"expression": EXPRESSION}
        if self.session is not None:
            params["session"] = self.session
        return params

    def block(self, count: int) -> list[int]:
        """``count`` eval round trips; their latencies in ns."""
        clock, send, readline = (
            time.perf_counter_ns,
            self.sock.sendall,
            self.reader.readline,
        )
        params = json.dumps(self._params(), separators=(",", ":"))
        template = '{"id":%d,"type":"eval","params":' + params + "}\n"
        latencies = []
        for _ in range(count):
            self.next_id += 1
            started = clock()
            send((template % self.next_id).encode())
            line = readline()
            latencies.append(clock() - started)
            if b'"value":2}' not in line:
                raise RuntimeError(f"unexpected reply {line!r}")
        return latencies

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class RpycClient:
    """RPyC classic: ``conn.eval``, one synchronous request per call."""

    def __init__(self, path: str) -> None:
        self.conn = rpyc.classic.unix_connect(path)

    def check(self) -> None:
        check_value(self.conn.eval(EXPRESSION))

    def block(self, count: int) -> list[int]:
        return timed(count, functools.partial(self.conn.eval, EXPRESSION), check_value)

    def close(self) -> None:
        self.conn.close()


Client = LineClient | RpycClient


class BlockClient(Protocol):
    """What a client process needs: checked blocks of round trips, then close."""

    def block(self, count: int) -> list[int]: ...
    def close(self) -> None: ...


def make_client(kind: str, path: str, own_session: bool = False) -> Client:
    if kind == "rpyc":
        return RpycClient(path)
    client = LineClient(path)
    if own_session:
        client.open_session()
    return client


def _client_process(
    make: Callable[[], BlockClient], control: multiprocessing.connection.Connection
) -> None:
    """One of N concurrent clients: runs a block of requests each time it is told to."""
    # The parent handles Ctrl-C and stops us; if it dies, so do we (siblings hold
    # copies of its pipe ends, so EOF alone would not tell us).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    try:
        client = make()
        client.block(1)  # checks the reply: fail here, not in the measurement
    except Exception as exc:
        _tell(control, f"client failed to start: {exc!r}")
        return
    with contextlib.suppress(EOFError, OSError, KeyboardInterrupt):  # parent gone
        control.send("ready")
        while (count := control.recv()) is not None:
            gc.disable()
            try:
                latencies = client.block(count)
            except Exception as exc:  # the server's fault: say so, not just EOF
                _tell(control, f"client failed: {exc!r}")
                return
            finally:
                gc.enable()
            control.send(latencies)
        client.close()


def _tell(control: multiprocessing.connection.Connection, message: str) -> None:
    with contextlib.suppress(OSError):
        control.send(message)


class ClientGroup:
    """N client processes, each with its own GIL and CPU time, each running ``make()``.

    ``method`` "fork" is the cheapest; a process that has used gRPC must not fork
    (its threads' locks), so bench/all.py uses "forkserver", ``make`` then picklable.
    """

    def __init__(
        self,
        make: Callable[[], BlockClient],
        count: int,
        method: Literal["fork", "forkserver"] = "fork",
    ) -> None:
        context = (
            multiprocessing.get_context("fork")
            if method == "fork"
            else multiprocessing.get_context("forkserver")
        )
        self.controls: list[multiprocessing.connection.Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for _ in range(count):
            parent, child = context.Pipe()
            process = context.Process(
                target=_client_process,
                args=(make, child),
                daemon=True,
            )
            process.start()
            child.close()
            self.controls.append(parent)
            self.processes.append(process)
        for control in self.controls:
            if not control.poll(READY_TIMEOUT):
                raise RuntimeError(f"a client ({make!r}) did not connect in time")
            answer = control.recv()
            if answer != "ready":
                raise RuntimeError(str(answer))

    def block(self, count: int) -> tuple[list[int], int]:
        """Each client runs ``count`` requests at once; all latencies and the wall time."""
        started = time.perf_counter_ns()
        for control in self.controls:
            control.send(count)
        latencies: list[int] = []
        for control in self.controls:
            answer = control.recv()
            if not isinstance(answer, list):
                raise RuntimeError(str(answer))
            latencies.extend(answer)
        return latencies, time.perf_counter_ns() - started

    def cpu_ns(self) -> int:
        return cpu_ns(process.pid for process in self.processes if process.pid)

    def close(self) -> None:
        for control in self.controls:
            with contextlib.suppress(OSError):
                control.send(None)
        for process in self.processes:
            process.join(2)
            if process.is_alive():
                process.kill()
                process.join(2)
        for control in self.controls:
            control.close()


# --------------------------------------------------------------------------------------
# servers


@dataclass
class Server:
    name: str
    argv: list[str]
    socket_path: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    process: subprocess.Popen[bytes] | None = None
    descendants: set[int] = field(default_factory=set)

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=BENCH_DIR.parent,
                start_new_session=True,  # no terminal Ctrl-C; we stop it ourselves
                preexec_fn=_die_with_parent,
            )

    def log_tail(self, size: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_bytes()[-size:].decode("utf-8", "replace")
        return ""

    def remember_descendants(self) -> None:
        if self.process is not None:
            self.descendants |= set(_descendants(self.process.pid))

    def cpu_ns(self) -> tuple[int, int]:
        """CPU time used so far by the server process and by its descendants (workers)."""
        assert self.process is not None
        return cpu_ns([self.process.pid]), cpu_ns(self.descendants)

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            self.remember_descendants()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        # The pipe backend's workers live in their own sessions; they die with it
        # (PR_SET_PDEATHSIG), but make sure: kill any we saw that outlived it.
        for pid in self.descendants:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self.descendants.clear()


def cpu_ns(pids: Iterable[int]) -> int:
    """CPU time of every thread of ``pids``, from /proc/PID/task/TID/schedstat (ns)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError, ValueError):
                    stat = Path(f"/proc/{pid}/task/{task}/schedstat").read_text()
                    total += int(stat.split()[0])
    return total


def _die_with_parent() -> None:
    """In the child: SIGTERM when the bench dies, even by SIGKILL (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _descendants(pid: int) -> Iterator[int]:
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            for child in map(int, children):
                yield child
                yield from _descendants(child)


def build_servers(tmp: Path, relay: bool) -> dict[str, Server]:
    python = sys.executable
    pipe_env = {k: v for k, v in os.environ.items() if not k.startswith("BEEPHOST_")}
    pipe_env.update(
        BEEPHOST_PIPE_BACKEND_SOCKET_PATH=str(tmp / "pipe.sock"),
        BEEPHOST_PIPE_BACKEND_METRICS_PORT="0",
        BEEPHOST_PIPE_BACKEND_PREWARM="0",
        BEEPHOST_PIPE_BACKEND_DRAIN_TIMEOUT="1",
    )
    servers = {
        "pipe": Server(
            "pipe",
            [python, "-m", "beephost_pipe_backend"],
            tmp / "pipe.sock",
            tmp / "pipe.log",
            env=pipe_env,
        ),
        "floor": Server(
            "floor",
            [python, str(BENCH_DIR / "_floor_server.py"), str(tmp / "floor.sock")],
            tmp / "floor.sock",
            tmp / "floor.log",
        ),
        "rpyc": Server(
            "rpyc",
            [python, str(BENCH_DIR / "_rpyc_server.py"), str(tmp / "rpyc.sock")],
            tmp / "rpyc.sock",
            tmp / "rpyc.log",
        ),
        "relay": Server(
            "relay",
            [python, str(BENCH_DIR / "_relay_server.py"), str(tmp / "relay.sock")],
            tmp / "relay.sock",
            tmp / "relay.log",
        ),
    }
    if not relay:
        del servers["relay"]
    return servers


def _probe(server: Server) -> bool:
    """True once the server answers as ready."""
    path = str(server.socket_path)
    if server.name == "rpyc":
        client: Client = RpycClient(path)
        try:
            client.check()
        finally:
            client.close()
        return True
    line_client = LineClient(path)
    try:
        pong = line_client.call({"type": "ping"})
        if pong != {"pong": True, "ready": True}:
            return False
        line_client.check()
    finally:
        line_client.close()
    return True


def wait_ready(servers: dict[str, Server]) -> dict[str, float]:
    """Wait for every server; seconds from our spawn to its first ready answer."""
    started = time.perf_counter()
    waiting = dict(servers)
    ready_after: dict[str, float] = {}
    while waiting:
        for name, server in list(waiting.items()):
            assert server.process is not None
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"{name} server exited with {server.process.returncode}:\n"
                    f"{server.log_tail()}"
                )
            with contextlib.suppress(OSError, EOFError, ValueError):
                if _probe(server):
                    ready_after[name] = time.perf_counter() - started
                    server.remember_descendants()
                    del waiting[name]
        if time.perf_counter() - started > READY_TIMEOUT:
            raise RuntimeError(f"not ready after {READY_TIMEOUT}s: {sorted(waiting)}")
        time.sleep(0.01)
    return ready_after


# --------------------------------------------------------------------------------------
# measurement


@dataclass
class Case:
    name: str
    kind: str  # the server
    clients: int
    budget_ns: int
    run: Callable[[int], tuple[list[int], int]]
    floor: str  # the case this one is compared with
    server: Server
    client_cpu: Callable[[], int]  # CPU ns used so far by this case's client(s)
    note: str = ""
    latencies: list[int] = field(default_factory=list)
    wall_ns: int = 0
    cpu_ns: list[int] = field(
        default_factory=lambda: [0, 0, 0]
    )  # client, server, worker

    @property
    def done(self) -> bool:
        return self.wall_ns >= self.budget_ns


def single(client: Client) -> Callable[[int], tuple[list[int], int]]:
    def run(count: int) -> tuple[list[int], int]:
        gc.disable()
        try:
            started = time.perf_counter_ns()
            latencies = client.block(count)
            return latencies, time.perf_counter_ns() - started
        finally:
            gc.enable()

    return run


def measure(cases: list[Case], block: int, warmup_s: float, rng: random.Random) -> int:
    """Warm every case up, then run shuffled rounds of one block per unfinished case."""
    for case in rng.sample(cases, len(cases)):
        deadline = time.perf_counter() + warmup_s
        while time.perf_counter() < deadline:
            case.run(block)
    gc.collect()
    rounds = 0
    while pending := [case for case in cases if not case.done]:
        rounds += 1
        rng.shuffle(pending)
        for case in pending:
            before = (case.client_cpu(), *case.server.cpu_ns())
            latencies, wall = case.run(block)
            after = (case.client_cpu(), *case.server.cpu_ns())
            case.latencies.extend(latencies)
            case.wall_ns += wall
            for i, (start, end) in enumerate(zip(before, after, strict=True)):
                case.cpu_ns[i] += end - start
    return rounds


def percentile(ordered: list[int], q: float) -> float:
    """Linear interpolation between closest ranks, in µs."""
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return (ordered[low] + (ordered[high] - ordered[low]) * (position - low)) / 1000


@dataclass
class Row:
    case: str
    clients: int
    requests: int
    p50: float
    p90: float
    p99: float
    rps: float
    p50_ratio: float
    rps_ratio: float
    cpu_us: tuple[float, float, float]  # per request: client, server, worker
    note: str


def summarize(cases: list[Case]) -> list[Row]:
    stats = {}
    for case in cases:
        ordered = sorted(case.latencies)
        stats[case.name] = (
            percentile(ordered, 0.50),
            percentile(ordered, 0.90),
            percentile(ordered, 0.99),
            len(ordered) / (case.wall_ns / 1e9),
        )
    rows = []
    for case in cases:
        p50, p90, p99, rps = stats[case.name]
        floor_p50, _, _, floor_rps = stats[case.floor]
        per_request = len(case.latencies) * 1000
        client, server, worker = (ns / per_request for ns in case.cpu_ns)
        rows.append(
            Row(
                case.name,
                case.clients,
                len(case.latencies),
                p50,
                p90,
                p99,
                rps,
                p50 / floor_p50,
                rps / floor_rps,
                (client, server, worker),
                case.note,
            )
        )
    return rows


HEADERS = [
    "case",
    "clients",
    "requests",
    "p50 µs",
    "p90 µs",
    "p99 µs",
    "req/s",
    "p50 ÷ floor",
    "req/s ÷ floor",
    "CPU µs/req: client",
    "server",
    "worker",
]


def _cells(row: Row) -> list[str]:
    client, server, worker = row.cpu_us
    return [
        row.case,
        str(row.clients),
        str(row.requests),
        f"{row.p50:.1f}",
        f"{row.p90:.1f}",
        f"{row.p99:.1f}",
        f"{row.rps:,.0f}",
        f"{row.p50_ratio:.2f}x",
        f"{row.rps_ratio:.2f}x",
        f"{client:.1f}",
        f"{server:.1f}",
        f"{worker:.1f}" if worker else "-",
    ]


def render_text(rows: list[Row]) -> str:
    table = [HEADERS, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]

    def fmt(line: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        )

    rule = fmt(["-" * width for width in widths])
    return "\n".join([fmt(HEADERS), rule, *map(fmt, table[1:])])


def render_markdown(rows: list[Row]) -> str:
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join(["---", *["--:"] * (len(HEADERS) - 1)]) + "|",
    ]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def render_legend(rows: list[Row]) -> str:
    width = max(len(row.case) for row in rows)
    return "\n".join(f"  {row.case.ljust(width)}  {row.note}" for row in rows)


# --------------------------------------------------------------------------------------
# main


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="measured time per 1-client case"
    )
    parser.add_argument(
        "--concurrent-seconds",
        type=float,
        default=None,
        help="measured time per 4-client case (default: half of --seconds)",
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="warm-up seconds per case"
    )
    parser.add_argument(
        "--block", type=int, default=200, help="requests per block per client"
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="clients in the extra rows"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin this client, every server and their workers to one CPU",
    )
    parser.add_argument(
        "--no-relay",
        dest="relay",
        action="store_false",
        help="skip the two-hop floor (bench/_relay_server.py)",
    )
    parser.add_argument("--cpu", type=int, default=None, help="the CPU for --pin")
    parser.add_argument("--seed", type=int, default=None, help="shuffle seed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    concurrent_s = args.concurrent_seconds
    if concurrent_s is None:
        concurrent_s = args.seconds / 2
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)

    allowed = sorted(os.sched_getaffinity(0))
    pinned_cpu: int | None = None
    if args.pin:
        pinned_cpu = args.cpu if args.cpu is not None else allowed[-1]
        os.sched_setaffinity(0, {pinned_cpu})  # inherited by every process we start

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)

    tmp = Path(tempfile.mkdtemp(prefix="bhb-", dir="/tmp"))
    servers = build_servers(tmp, args.relay)
    clients: list[Client] = []
    groups: list[ClientGroup] = []
    failed = False
    try:
        for server in servers.values():  # all at once: none waits for another
            server.start()
        ready_after = wait_ready(servers)
        path = {name: str(server.socket_path) for name, server in servers.items()}

        budget = int(args.seconds * 1e9)
        cbudget = int(concurrent_s * 1e9)
        n = args.concurrency
        cases: list[Case] = []
        for kind, note in (
            ("floor", "raw UDS JSON server, eval in-process (1 hop)"),
            ("pipe", "beephost pipe backend: server + worker process (2 hops)"),
            ("rpyc", "RPyC classic conn.eval over UDS (1 hop)"),
            (
                "relay",
                "leanest asyncio server + worker process (2 hops): the 2-hop floor",
            ),
        ):
            if kind not in servers:
                continue
            client = make_client(kind, path[kind])
            client.check()
            clients.append(client)
            cases.append(
                Case(
                    kind,
                    kind,
                    1,
                    budget,
                    single(client),
                    "floor",
                    servers[kind],
                    time.thread_time_ns,  # the client runs on this thread
                    note,
                )
            )
        for kind, name, own, note in (
            ("floor", f"floor x{n}", False, "thread per connection"),
            (
                "pipe",
                f"pipe x{n}",
                False,
                "all clients on the default session (1 worker)",
            ),
            ("pipe", f"pipe x{n} sessions", True, f"one session each ({n} workers)"),
            ("rpyc", f"rpyc x{n}", False, "thread per connection"),
            ("relay", f"relay x{n}", False, "one worker, requests queued in order"),
        ):
            if kind not in servers:
                continue
            group = ClientGroup(
                functools.partial(make_client, kind, path[kind], own), n
            )
            groups.append(group)
            cases.append(
                Case(
                    name,
                    kind,
                    n,
                    cbudget,
                    group.block,
                    f"floor x{n}",
                    servers[kind],
                    group.cpu_ns,
                    note,
                )
            )
        for server in servers.values():
            server.remember_descendants()

        started = time.perf_counter()
        rounds = measure(cases, args.block, args.warmup, rng)
        elapsed = time.perf_counter() - started
        rows = summarize(cases)
        report(
            args, rows, rounds, elapsed, seed, allowed, pinned_cpu, servers, ready_after
        )
        return 0
    except Exception:
        failed = True  # show the servers' logs: the cause is often there
        raise
    finally:
        # A second Ctrl-C must not skip the clean-up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        cleanup(groups, clients, servers, tmp, show_logs=failed)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def cleanup(
    groups: list[ClientGroup],
    clients: list[Client],
    servers: dict[str, Server],
    tmp: Path,
    show_logs: bool,
) -> None:
    """Stop every process we started and remove the sockets; no step can skip another
    (printing, for one, fails once the reader of our output has gone)."""
    for group in groups:
        with contextlib.suppress(Exception):
            group.close()
    for client in clients:
        with contextlib.suppress(Exception):
            client.close()
    for server in servers.values():
        tail = server.log_tail() if show_logs and server.process is not None else ""
        with contextlib.suppress(Exception):
            if tail.strip():
                print(
                    f"--- {server.name} server log (tail) ---\n{tail}", file=sys.stderr
                )
        with contextlib.suppress(Exception):
            server.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def _affinities(servers: dict[str, Server]) -> str:
    parts = [f"client {_cpus(os.getpid())}"]
    for server in servers.values():
        assert server.process is not None
        pids = [server.process.pid, *sorted(server.descendants)]
        parts.append(f"{server.name} " + "/".join(_cpus(pid) for pid in pids))
    return ", ".join(parts)


def _cpus(pid: int) -> str:
    try:
        cpus = sorted(os.sched_getaffinity(pid))
    except OSError:
        return "?"
    return ",".join(map(str, cpus))


def _code_under_test() -> str:
    """Where the pipe backend is imported from, and the git state of that tree."""
    spec = importlib.util.find_spec("beephost_pipe_backend")
    origin = Path(spec.origin).parent if spec and spec.origin else None
    if origin is None:
        return "beephost_pipe_backend not importable"
    root = BENCH_DIR.parent
    if not origin.is_relative_to(root):
        return f"{origin} (outside this repo, e.g. via PYTHONPATH)"
    state = git_state(root)
    if state is None:
        return str(origin)
    return f"{origin.relative_to(root)} {state}"


def git_state(root: Path) -> str | None:
    """``at <commit>, packages/ and services/ clean`` (or with changes); None without git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "packages", "services"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    state = "with uncommitted changes" if dirty else "clean"
    return f"at {head}, packages/ and services/ {state}"


def report(
    args: argparse.Namespace,
    rows: list[Row],
    rounds: int,
    elapsed: float,
    seed: int,
    allowed: list[int],
    pinned_cpu: int | None,
    servers: dict[str, Server],
    ready_after: dict[str, float],
) -> None:
    try:
        import uvloop  # noqa: F401 - only asks whether the backend will run on uvloop

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    print(
        f"pipe_roundtrip: eval {EXPRESSION!r}, Python {platform.python_version()}, "
        f"rpyc {rpyc.__version__}, pipe backend on {loop}"
    )
    print(f"code under test: {_code_under_test()}")
    print(
        f"{rounds} shuffled rounds of {args.block}-request blocks in {elapsed:.1f}s "
        f"(+{args.warmup:g}s warm-up per case), seed {seed}"
    )
    if pinned_cpu is not None:
        print(
            f"PINNED: client, servers and the pipe backend's worker all on CPU {pinned_cpu} "
            f"(sched_setaffinity, inherited; like `taskset -c {pinned_cpu}`). No round trip "
            "crosses CPUs, so latency is steadier, but client and servers time-share one "
            "CPU: the xN rows then measure CPU cost per request, not parallelism."
        )
    else:
        print(
            f"NOT PINNED: the OS places every process on any of CPUs "
            f"{','.join(map(str, allowed))}; a round trip whose ends sit on different "
            "CPUs costs about 2x, so compare ratios to the floor, not absolute times "
            "(use --pin for steadier numbers)."
        )
    print(f"affinity: {_affinities(servers)}")
    print(
        "ready after spawn (all started at once, so they competed): "
        + ", ".join(f"{name} {s * 1000:.0f} ms" for name, s in ready_after.items())
    )
    print()
    print(render_text(rows))
    print(render_legend(rows))
    print(
        "  CPU µs/req: CPU time per request (/proc schedstat) of the client(s), the "
        "server process, and the server's child processes (the pipe backend's workers)"
    )
    print()
    print(render_markdown(rows))
    print()
    by_name = {row.case: row for row in rows}
    pipe, rpyc_row = by_name["pipe"], by_name["rpyc"]
    met = pipe.p50 <= rpyc_row.p50
    print(
        f"VERDICT: goal 'pipe p50 at or below RPyC's' {'MET' if met else 'NOT MET'}: "
        f"pipe p50 {pipe.p50:.1f} µs ({pipe.p50_ratio:.2f}x floor) vs RPyC "
        f"{rpyc_row.p50:.1f} µs ({rpyc_row.p50_ratio:.2f}x floor), "
        f"pipe/RPyC = {pipe.p50 / rpyc_row.p50:.2f}"
    )
    n = args.concurrency
    pn, fn = by_name[f"pipe x{n}"], by_name[f"floor x{n}"]
    print(
        f"{n} clients: pipe {pn.rps:,.0f} req/s vs floor {fn.rps:,.0f} req/s "
        f"({pn.rps_ratio:.2f}x); with a session each: "
        f"{by_name[f'pipe x{n} sessions'].rps:,.0f} req/s"
    )


def entry(main: Callable[[], int]) -> None:
    """Run a bench's ``main`` as a command: its exit code, 130 on ^C, 141 on EPIPE."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every process started was stopped", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # our reader went away (`| head`): we cleaned up already
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


if __name__ == "__main__":
    entry(main)
