"""The round-trip harness the bench scripts share: cases, servers, measurement, tables.

A case (``Spec``) is a server process, its readiness probe and a client factory;
``run`` starts every case's server at once, measures them in short blocks run in a
shuffled, interleaved order (so that every case sees the same machine noise) and
``print_tables`` reports them. bench/grpc_roundtrip.py, transports.py, plots.py,
sdk_roundtrip.py and all.py measure with it; ``entry`` runs any bench's ``main``.
"""

import argparse
import contextlib
import functools
import gc
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # as the backend does

import grpc
from bench import http_roundtrip, pipe_roundtrip
from bench._options import bench_parser, known_args

from beephost_pb.exec.v1 import exec_pb2, exec_pb2_grpc

BENCH_DIR = Path(__file__).resolve().parent
EXPRESSION = "1+1"
DEADLINE_S = 10.0  # the stub's deadline per call
READY_TIMEOUT = 60.0

# --------------------------------------------------------------------------------------
# clients


class Client(Protocol):
    def block(self, count: int) -> list[int]:
        """``count`` round trips, checked; their latencies in ns."""
        ...

    def close(self) -> None: ...


class GrpcEval:
    """The generated sync stub on a plain channel, with a deadline on every call."""

    def __init__(
        self, target: str, deadline: float = DEADLINE_S, own_session: bool = False
    ) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = exec_pb2_grpc.ExecutorStub(self.channel)
        session = ""  # the default one
        if own_session:
            opened = self.stub.OpenSession(
                exec_pb2.OpenSessionRequest(), timeout=deadline
            )
            session = opened.session
        self.request = exec_pb2.EvaluateRequest(session=session, expression=EXPRESSION)
        self.deadline = deadline

    def block(self, count: int) -> list[int]:
        clock, evaluate, request = (
            time.perf_counter_ns,
            self.stub.Evaluate,
            self.request,
        )
        latencies = []
        for _ in range(count):
            started = clock()
            reply = evaluate(request, timeout=self.deadline)
            latencies.append(clock() - started)
            if reply.value_json != "2":
                raise RuntimeError(f"unexpected reply {reply!r}")
        return latencies

    def close(self) -> None:
        self.channel.close()


class CallClient:
    """Any client with a checked ``call()`` (bench/http_roundtrip.py's), as a Client."""

    def __init__(self, inner: http_roundtrip.HTTPEval) -> None:
        self.inner = inner

    def block(self, count: int) -> list[int]:
        clock, call = time.perf_counter_ns, self.inner.call
        latencies = []
        for _ in range(count):
            started = clock()
            call()
            latencies.append(clock() - started)
        return latencies

    def close(self) -> None:
        self.inner.close()


def http_client(port: int, own_session: bool = False) -> CallClient:
    """A keep-alive http.client eval client (a module function: picklable, for the
    client processes of bench/all.py's throughput rows), in a session of its own if
    asked (our backend only)."""
    inner = http_roundtrip.HTTPEval(port)
    if own_session:
        inner.open_session()
    return CallClient(inner)


def grpc_probe(port: int) -> Callable[[], bool]:
    """Ready once an Evaluate answers 2 (the backend says UNAVAILABLE until ready). A
    fresh channel each time: a channel that failed to connect backs off for seconds."""

    def probe() -> bool:
        client = GrpcEval(f"127.0.0.1:{port}")
        try:
            reply = client.stub.Evaluate(client.request, timeout=1.0)
            return reply.value_json == "2"
        except grpc.RpcError:
            return False
        finally:
            client.close()

    return probe


def http_probe(port: int) -> Callable[[], bool]:
    ready = http_roundtrip.http_ready(port)

    def probe() -> bool:
        if not ready():
            return False
        client = http_roundtrip.HTTPEval(port)
        try:
            client.call()
        finally:
            client.close()
        return True

    return probe


def socket_probe(server: pipe_roundtrip.Server) -> Callable[[], bool]:
    return lambda: pipe_roundtrip._probe(server)


# --------------------------------------------------------------------------------------
# servers


class ServerLike(Protocol):
    name: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def exit_code(self) -> int | None: ...
    def log_tail(self, size: int = 2000) -> str: ...
    def remember_descendants(self) -> None: ...
    def cpu_ns(self) -> tuple[int, int]: ...


class ProcessServer(pipe_roundtrip.Server):
    """bench/pipe_roundtrip.py's server process (own session, dies with the bench)."""

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()


def base_env(prefix: str = "BEEPHOST_") -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(prefix)}


# The backends' modules and settings prefixes, by kind.
BACKENDS = {
    "pipe": ("beephost_pipe_backend", "BEEPHOST_PIPE_BACKEND_"),
    "http": ("beephost_http_backend", "BEEPHOST_HTTP_BACKEND_"),
    "grpc": ("beephost_rpc_backend", "BEEPHOST_RPC_BACKEND_"),
}


def backend_server(
    kind: str, name: str, tmp: Path, address: Path | int, python: str | None = None
) -> ProcessServer:
    """A backend of ``kind`` on ``address`` (pipe: a socket path; else a port), as every
    bench runs one: no metrics port, no prewarmed worker, and (but HTTP) a quick stop.
    ``python`` runs its workers; by default the backend's own interpreter."""
    module, prefix = BACKENDS[kind]
    settings = {"METRICS_PORT": "0", "PREWARM": "0"}
    if python is not None:
        settings["PYTHON"] = python
    if kind != "http":
        settings["DRAIN_TIMEOUT"] = "1"
    if isinstance(address, Path):
        settings["SOCKET_PATH"] = str(address)
        ready = address
    else:
        settings["PORT"] = str(address)
        ready = tmp / f"{name}.none"
    env = base_env()
    env.update({prefix + key: value for key, value in settings.items()})
    return ProcessServer(
        name, [sys.executable, "-m", module], ready, tmp / f"{name}.log", env=env
    )


def bare_server(
    name: str, script: str, tmp: Path, port: int, *flags: str
) -> ProcessServer:
    """``bench/<script> <port> [flags]``: a bare framework server, the baseline of a
    backend (``--hop``: its two-hop floor)."""
    return ProcessServer(
        name,
        [sys.executable, str(BENCH_DIR / script), str(port), *flags],
        tmp / f"{name}.none",
        tmp / f"{name}.log",
        env=base_env(),
    )


@dataclass
class Spec:
    """One measured case: its server, readiness probe, client factory (picklable where
    it can be: a partial of a module-level class or function)."""

    name: str
    server: ServerLike
    probe: Callable[[], bool]
    client: Callable[[], Client]
    note: str
    block_scale: float = 1.0  # slow cases run fewer requests per block
    budget_scale: float = 1.0  # slow cases get more measured time, for enough samples
    #: Our backends: a client that opens a session of its own first (picklable).
    session_client: Callable[[], Client] | None = None


#: The cases on a Unix socket ``<tmp>/<name>.sock``, by name: the server script in bench/
#: (its argument: the socket), the client class (its argument: the socket), the note.
#: pipe_roundtrip._probe tells RPyC by its name.
SOCKET_CASES: dict[str, tuple[str, Callable[[str], Client], str]] = {
    "floor": (
        "_floor_server.py",
        pipe_roundtrip.LineClient,
        "raw UDS NDJSON server, eval in-process (1 hop), raw socket client",
    ),
    "rpyc": (
        "_rpyc_server.py",
        pipe_roundtrip.RpycClient,
        "RPyC classic conn.eval over UDS (1 hop)",
    ),
    "relay": (
        "_relay_server.py",
        pipe_roundtrip.LineClient,
        "the two-hop floor: the leanest asyncio server relaying to a worker process "
        "(no validation, limits or sessions), raw socket client",
    ),
}


def socket_spec(name: str, tmp: Path) -> Spec:
    """The case ``SOCKET_CASES[name]``."""
    script, client, note = SOCKET_CASES[name]
    path = tmp / f"{name}.sock"
    server = ProcessServer(
        name,
        [sys.executable, str(BENCH_DIR / script), str(path)],
        path,
        tmp / f"{name}.log",
    )
    return Spec(
        name, server, socket_probe(server), functools.partial(client, str(path)), note
    )


#: The cases on a loopback port, by name: the protocol (``grpc``: called through the
#: generated sync stub, ``http``: through keep-alive http.client), the bare framework's
#: script and its flags (empty: our backend of that protocol), and the note of the tables.
PORT_CASES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "grpc-backend": (
        "grpc",
        (),
        "beephost rpc backend: grpc.aio + worker process (2 hops), sync stub",
    ),
    "grpc-bare": (
        "grpc",
        ("_bare_grpc.py",),
        "bare grpc.aio Evaluate, eval in-process (1 hop), sync stub",
    ),
    "grpc-bare-hop": (
        "grpc",
        ("_bare_grpc.py", "--hop"),
        "grpc.aio's two-hop floor: bare Evaluate awaiting eval in a worker process",
    ),
    "http-backend": (
        "http",
        (),
        "beephost HTTP backend: uvicorn + FastAPI + worker process (2 hops), http.client",
    ),
    "fastapi-bare": (
        "http",
        ("_bare_fastapi.py",),
        "bare FastAPI POST /api/eval on uvicorn, eval in-process (1 hop), http.client",
    ),
    "fastapi-bare-hop": (
        "http",
        ("_bare_fastapi.py", "--hop"),
        "FastAPI's two-hop floor: bare /api/eval awaiting eval in a worker process",
    ),
    "asgi-bare-hop": (
        "http",
        ("_bare_asgi.py",),
        "uvicorn's two-hop floor: a plain ASGI /api/eval awaiting eval in a worker",
    ),
}


def port_spec(name: str, tmp: Path) -> Spec:
    """The case ``PORT_CASES[name]`` on a free port."""
    protocol, script, note = PORT_CASES[name]
    port = http_roundtrip.free_port()
    server = (
        bare_server(name, script[0], tmp, port, *script[1:])
        if script
        else backend_server(protocol, name, tmp, port)
    )
    if protocol == "grpc":
        probe = grpc_probe(port)
        client: Callable[[], Client] = functools.partial(GrpcEval, f"127.0.0.1:{port}")
        in_session: Callable[[], Client] = functools.partial(
            GrpcEval, f"127.0.0.1:{port}", DEADLINE_S, True
        )
    else:
        probe, client = http_probe(port), functools.partial(http_client, port)
        in_session = functools.partial(http_client, port, True)
    ours = not script
    return Spec(
        name, server, probe, client, note, session_client=in_session if ours else None
    )


# --------------------------------------------------------------------------------------
# measurement


@dataclass
class Result:
    spec: Spec
    block: int
    budget_ns: int
    client: Client | None = None
    latencies: list[int] = field(default_factory=list)
    wall_ns: int = 0
    cpu_ns: list[int] = field(default_factory=lambda: [0, 0, 0])  # client/server/worker

    @property
    def name(self) -> str:
        return self.spec.name

    def run_block(self) -> tuple[list[int], int]:
        assert self.client is not None
        gc.disable()
        try:
            started = time.perf_counter_ns()
            latencies = self.client.block(self.block)
            return latencies, time.perf_counter_ns() - started
        finally:
            gc.enable()

    def p(self, q: float) -> float:
        return pipe_roundtrip.percentile(sorted(self.latencies), q)

    @property
    def rps(self) -> float:
        return len(self.latencies) / (self.wall_ns / 1e9)

    def cpu_us(self) -> tuple[float, float, float]:
        per_request = len(self.latencies) * 1000
        client, server, worker = (ns / per_request for ns in self.cpu_ns)
        return client, server, worker


def wait_ready(specs: Sequence[Spec]) -> dict[str, float]:
    """Wait for every server; seconds from the spawn to its first good answer."""
    started = time.perf_counter()
    waiting = {spec.name: spec for spec in specs}
    ready_after: dict[str, float] = {}
    while waiting:
        for name, spec in list(waiting.items()):
            code = spec.server.exit_code()
            if code is not None:
                raise RuntimeError(
                    f"{name} exited with {code}:\n{spec.server.log_tail()}"
                )
            with contextlib.suppress(
                OSError, EOFError, ValueError, RuntimeError, grpc.RpcError
            ):
                if spec.probe():
                    ready_after[name] = time.perf_counter() - started
                    spec.server.remember_descendants()
                    del waiting[name]
        if time.perf_counter() - started > READY_TIMEOUT:
            raise RuntimeError(f"not ready after {READY_TIMEOUT}s: {sorted(waiting)}")
        time.sleep(0.01)
    return ready_after


def measure(results: list[Result], warmup_s: float, rng: random.Random) -> int:
    """Warm every case up, then shuffled rounds of one block per unfinished case."""
    for result in rng.sample(results, len(results)):
        deadline = time.perf_counter() + warmup_s
        while time.perf_counter() < deadline:
            result.run_block()
    gc.collect()
    rounds = 0
    while pending := [r for r in results if r.wall_ns < r.budget_ns]:
        rounds += 1
        rng.shuffle(pending)
        for result in pending:
            server = result.spec.server
            before = (time.thread_time_ns(), *server.cpu_ns())
            latencies, wall = result.run_block()
            after = (time.thread_time_ns(), *server.cpu_ns())
            result.latencies.extend(latencies)
            result.wall_ns += wall
            for i, (start, end) in enumerate(zip(before, after, strict=True)):
                result.cpu_ns[i] += end - start
    return rounds


@dataclass
class Run:
    results: list[Result]
    rounds: int
    elapsed: float
    ready_after: dict[str, float]
    seed: int
    affinity: str


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run(
    args: argparse.Namespace,
    build: Callable[[Path], list[Spec]],
    prefix: str,
    during: Callable[[list[Spec], random.Random], None] | None = None,
) -> Run:
    """Start every server at once, wait for all, measure, stop them all on every path.
    ``during`` runs after the measurement while the servers are still up."""
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    if args.pin:
        cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})  # inherited by every process we start
    handlers = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    specs: list[Spec] = []
    results: list[Result] = []
    failed = False
    try:
        specs = build(tmp)
        for spec in specs:  # all at once: none waits for another
            spec.server.start()
        ready_after = wait_ready(specs)
        budget = int(args.seconds * 1e9)
        for spec in specs:
            block = max(1, round(args.block * spec.block_scale))
            result = Result(spec, block, round(budget * spec.budget_scale))
            results.append(result)
            result.client = spec.client()
        started = time.perf_counter()
        rounds = measure(results, args.warmup, rng)
        elapsed = time.perf_counter() - started
        if during is not None:
            during(specs, rng)
        return Run(results, rounds, elapsed, ready_after, seed, affinities(specs))
    except BaseException:
        failed = True  # show the servers' logs: the cause is often there
        raise
    finally:
        # A second Ctrl-C or SIGTERM must not skip this.
        for sig in _SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        cleanup(specs, results, tmp, show_logs=failed)
        for sig, handler in handlers.items():  # a caller may go on (bench/all.py)
            signal.signal(sig, handler)


def cleanup(
    specs: list[Spec], results: list[Result], tmp: Path, show_logs: bool
) -> None:
    """Close every client, stop every server; no step can skip another."""
    for result in results:
        if result.client is not None:
            with contextlib.suppress(Exception):
                result.client.close()
    for spec in specs:
        with contextlib.suppress(Exception):
            tail = spec.server.log_tail() if show_logs else ""
            if tail.strip():
                print(f"--- {spec.name} log (tail) ---\n{tail}", file=sys.stderr)
        with contextlib.suppress(Exception):
            spec.server.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def affinities(specs: list[Spec]) -> str:
    parts = [f"client {pipe_roundtrip._cpus(os.getpid())}"]
    for spec in specs:
        process = getattr(spec.server, "process", None)
        if process is not None:
            parts.append(f"{spec.name} {pipe_roundtrip._cpus(process.pid)}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------
# report


def render_text(headers: list[str], rows: list[list[str]]) -> str:
    table = [headers, *rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]

    def fmt(line: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        )

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def render_markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---", *["--:"] * (len(headers) - 1)]) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def print_preamble(title: str, args: argparse.Namespace, result: Run) -> None:
    try:
        import uvloop  # noqa: F401 - only asks whether the servers run on uvloop

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    print(
        f"{title}: {EXPRESSION!r}, Python {platform.python_version()}, "
        f"grpcio {grpc.__version__}, servers on {loop}"
    )
    print(f"code under test: {code_under_test()}")
    print(
        f"{result.rounds} shuffled rounds of blocks ({args.block} requests, fewer for "
        f"slow cases) in {result.elapsed:.1f}s, {args.seconds:g}s measured per case "
        f"(+{args.warmup:g}s warm-up), seed {result.seed}"
    )
    if args.pin:
        print(
            "PINNED: client, servers and workers on one CPU (sched_setaffinity, "
            "inherited; like `taskset -c N`): no round trip crosses CPUs."
        )
    else:
        print(
            "NOT PINNED: the OS places every process on any CPU; a round trip across "
            "CPUs costs about 2x, so compare ratios, not absolute times (--pin: steadier)."
        )
    print(f"affinity: {result.affinity}")
    print(
        "ready after spawn (all started at once, so they competed): "
        + ", ".join(f"{n} {s * 1000:.0f} ms" for n, s in result.ready_after.items())
    )
    print()


def code_under_test() -> str:
    root = BENCH_DIR.parent
    state = pipe_roundtrip.git_state(root)
    return str(root) if state is None else f"{root.name} {state}"


def parse_args(argv: list[str] | None, doc: str, seconds: float) -> argparse.Namespace:
    """The round-trip options of the script whose docstring is ``doc``."""
    parser = bench_parser(doc)
    parser.add_argument(
        "--seconds", type=float, default=seconds, help="measured time per case"
    )
    parser.add_argument("--warmup", type=float, default=0.5, help="warm-up per case")
    parser.add_argument("--block", type=int, default=200, help="requests per block")
    parser.add_argument(
        "--pin", action="store_true", help="pin the client and every server to one CPU"
    )
    parser.add_argument("--cpu", type=int, default=None, help="the CPU for --pin")
    parser.add_argument("--seed", type=int, default=None, help="shuffle seed")
    return known_args(parser, argv)


def cpu_cells(result: Result) -> list[str]:
    client, server, worker = result.cpu_us()
    return [f"{client:.1f}", f"{server:.1f}", f"{worker:.1f}" if worker else "-"]


def print_tables(
    results: list[Result], ratios: dict[str, Callable[[Result], str]], workers: str
) -> None:
    """The results as a text and a Markdown table: each case's latency percentiles, a
    column per entry of ``ratios`` (header: cell), its CPU per request; and its note."""
    headers = [
        "case",
        "requests",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "req/s",
        *ratios,
        "CPU µs/req: client",
        "server",
        "worker",
    ]
    rows = [
        [
            r.name,
            str(len(r.latencies)),
            f"{r.p(0.5):.1f}",
            f"{r.p(0.9):.1f}",
            f"{r.p(0.99):.1f}",
            f"{r.rps:,.0f}",
            *(cell(r) for cell in ratios.values()),
            *cpu_cells(r),
        ]
        for r in results
    ]
    print(render_text(headers, rows))
    width = max(len(r.name) for r in results)
    for r in results:
        print(f"  {r.name.ljust(width)}  {r.spec.note}")
    print(
        "  CPU µs/req: the client's calling thread, the server process, its child "
        f"processes ({workers}); from /proc schedstat"
    )
    print()
    print(render_markdown(headers, rows))
    print()


entry = pipe_roundtrip.entry  # for the other benches
