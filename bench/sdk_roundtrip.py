"""SDK round trips per transport, beside the raw floor of each wire, in one run.

    uv run python bench/sdk_roundtrip.py [--seconds S] [--block N] [--pin] [--seed N]

Starts a pipe, an HTTP and a gRPC backend at once (separate processes, default
settings, no token), then evaluates ``1+1`` in the default session through:

- each transport's FLOOR, the least code that speaks its wire: a raw NDJSON socket
  client (pipe), a bare ``http.client`` keep-alive POST (HTTP), the generated gRPC stub
  on a plain channel (gRPC);
- the SDK, sync (``beephost_client.connect``) and async (``aconnect``, one persistent
  event loop), through the same servers;
- other HTTP clients for the same request: ``urllib.request`` (a new connection per
  request, as it does), and ``httpx`` (sync and async) if it is installed: the choice
  of the SDK's HTTP stack rests on these rows.

Every case runs in short blocks, the blocks of all cases in a shuffled, interleaved
order, so each sees the same machine noise. Each case is reported as a ratio to its own
transport's floor measured in the same run (absolute numbers on a shared 2-vCPU machine
move by 2x between runs; the ratios do not; see shared/research/platform.md,
"Benchmarking on these machines").
"""

import argparse
import asyncio
import contextlib
import functools
import gc
import http.client
import importlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Run as a script, sys.path[0] is bench/: make the sibling scripts importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _harness, pipe_roundtrip
from bench._options import bench_parser, known_args
from bench._timing import atimed, timed
from bench.http_roundtrip import free_port
from bench.pipe_roundtrip import check_value

import beephost_client

EXPRESSION = "1+1"
READY_TIMEOUT = 60.0

# --------------------------------------------------------------------------------------
# servers


@dataclass
class Servers:
    root: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)

    def start(self, kind: str, module: str, prefix: str, **settings: Any) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
        env.update({prefix + k.upper(): str(v) for k, v in settings.items()})
        env[prefix + "METRICS_PORT"] = "0"
        log = (self.root / f"{kind}.log").open("wb")
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", module], env=env, stdout=log, stderr=log
            )
        )
        log.close()

    def start_all(self) -> None:
        socket_path = self.root / "pipe.sock"
        self.start(
            "pipe",
            "beephost_pipe_backend",
            "BEEPHOST_PIPE_BACKEND_",
            socket_path=socket_path,
        )
        self.urls["pipe"] = f"unix://{socket_path}"
        for kind, module, prefix in (
            ("http", "beephost_http_backend", "BEEPHOST_HTTP_BACKEND_"),
            ("grpc", "beephost_rpc_backend", "BEEPHOST_RPC_BACKEND_"),
        ):
            port = free_port()
            self.start(kind, module, prefix, host="127.0.0.1", port=port)
            self.urls[kind] = f"{kind}://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT
        for kind, url in self.urls.items():
            while True:
                try:
                    with beephost_client.connect(url, timeout=2) as client:
                        if client.evaluate(EXPRESSION) == 2:
                            break
                except beephost_client.Unavailable:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{kind} backend not ready: {(self.root / f'{kind}.log').read_text()}"
                    )
                time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --------------------------------------------------------------------------------------
# cases: each runs `count` round trips and returns their latencies in ns


class Case:
    transport = ""
    name = ""
    floor = False

    def block(self, count: int) -> list[int]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class PipeFloor(pipe_roundtrip.LineClient, Case):
    """A raw blocking NDJSON client: sendall, then a buffered readline
    (bench/pipe_roundtrip.py's client, without a session)."""

    transport, name, floor = "pipe", "raw NDJSON socket", True

    def __init__(self, url: str) -> None:
        super().__init__(url.removeprefix("unix://"))


class HttpClientFloor(Case):
    """``http.client`` on one keep-alive connection: request, getresponse, read."""

    transport, name, floor = "http", "bare http.client POST", True

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.body = json.dumps({"expression": EXPRESSION}).encode()
        self.headers = {"Content-Type": "application/json"}

    def block(self, count: int) -> list[int]:
        clock, conn = time.perf_counter_ns, self.conn
        latencies = []
        for _ in range(count):
            started = clock()
            conn.request("POST", "/api/eval", self.body, self.headers)
            response = conn.getresponse()
            data = response.read()
            latencies.append(clock() - started)
            if json.loads(data)["value"] != 2:
                raise RuntimeError(f"unexpected reply {data!r}")
        return latencies

    def close(self) -> None:
        self.conn.close()


class UrllibCase(Case):
    """``urllib.request.urlopen``: no keep-alive, a connection per request."""

    transport, name = "http", "urllib.request POST"

    def __init__(self, url: str) -> None:
        self.url = url + "/api/eval"
        self.body = json.dumps({"expression": EXPRESSION}).encode()

    def block(self, count: int) -> list[int]:
        clock = time.perf_counter_ns
        latencies = []
        for _ in range(count):
            started = clock()
            request = urllib.request.Request(
                self.url, self.body, {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                data = response.read()
            latencies.append(clock() - started)
            if json.loads(data)["value"] != 2:
                raise RuntimeError(f"unexpected reply {data!r}")
        return latencies


class HttpxCase(Case):
    transport, name = "http", "httpx.Client POST"

    def __init__(self, url: str) -> None:
        httpx = importlib.import_module("httpx")  # optional: only when installed
        self.client = httpx.Client(base_url=url, timeout=30)

    def block(self, count: int) -> list[int]:
        post = self.client.post
        return timed(
            count,
            lambda: post("/api/eval", json={"expression": EXPRESSION}).json()["value"],
            check_value,
        )

    def close(self) -> None:
        self.client.close()


class GrpcFloor(_harness.GrpcEval, Case):
    """The generated stub on a plain channel, with a deadline, as the SDK sets one
    (bench/_harness.py's client)."""

    transport, name, floor = "grpc", "raw grpc stub", True

    def __init__(self, url: str) -> None:
        super().__init__(url.removeprefix("grpc://"), deadline=30.0)


class SdkSync(Case):
    name = "SDK sync"

    def __init__(self, transport: str, url: str) -> None:
        self.transport = transport
        self.client = beephost_client.connect(url)

    def block(self, count: int) -> list[int]:
        return timed(
            count, functools.partial(self.client.evaluate, EXPRESSION), check_value
        )

    def close(self) -> None:
        self.client.close()


class AsyncCase(Case):
    """Async cases share one event loop that lives for the whole run."""

    runner: asyncio.Runner | None = None

    @classmethod
    def loop_runner(cls) -> asyncio.Runner:
        if AsyncCase.runner is None:
            AsyncCase.runner = asyncio.Runner()
        return AsyncCase.runner

    def block(self, count: int) -> list[int]:
        return self.loop_runner().run(self.ablock(count))

    async def ablock(self, count: int) -> list[int]:
        raise NotImplementedError


class SdkAsync(AsyncCase):
    name = "SDK async"

    def __init__(self, transport: str, url: str) -> None:
        self.transport = transport
        self.client = beephost_client.aconnect(url)

    async def ablock(self, count: int) -> list[int]:
        return await atimed(
            count, functools.partial(self.client.evaluate, EXPRESSION), check_value
        )

    def close(self) -> None:
        self.loop_runner().run(self.client.aclose())


class HttpxAsyncCase(AsyncCase):
    transport, name = "http", "httpx.AsyncClient POST"

    def __init__(self, url: str) -> None:
        httpx = importlib.import_module("httpx")
        self.client = httpx.AsyncClient(base_url=url, timeout=30)

    async def ablock(self, count: int) -> list[int]:
        post = self.client.post

        async def value() -> object:
            return (await post("/api/eval", json={"expression": EXPRESSION})).json()[
                "value"
            ]

        return await atimed(count, value, check_value)

    def close(self) -> None:
        self.loop_runner().run(self.client.aclose())


def make_cases(urls: dict[str, str]) -> list[Case]:
    cases: list[Case] = [
        PipeFloor(urls["pipe"]),
        HttpClientFloor(urls["http"]),
        GrpcFloor(urls["grpc"]),
        UrllibCase(urls["http"]),
    ]
    with contextlib.suppress(ImportError):
        cases += [HttpxCase(urls["http"]), HttpxAsyncCase(urls["http"])]
    for transport in ("pipe", "http", "grpc"):
        cases += [
            SdkSync(transport, urls[transport]),
            SdkAsync(transport, urls[transport]),
        ]
    return cases


# --------------------------------------------------------------------------------------
# measuring and reporting


def measure(
    cases: list[Case], seconds: float, block: int, rng: random.Random
) -> dict[Case, list[int]]:
    results: dict[Case, list[int]] = {case: [] for case in cases}
    for case in cases:
        case.block(max(20, block // 5))  # warm up: connections, caches, JIT-free paths
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        order = cases[:]
        rng.shuffle(order)
        for case in order:
            gc.disable()
            try:
                results[case] += case.block(block)
            finally:
                gc.enable()
    return results


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def report(results: dict[Case, list[int]], pinned: str) -> None:
    floors = {
        case.transport: statistics.median(lat) / 1000
        for case, lat in results.items()
        if case.floor
    }
    http_client = floors["http"]
    rows = []
    for case, latencies in results.items():
        p50 = statistics.median(latencies) / 1000
        rows.append(
            (
                case.transport,
                case.name,
                len(latencies),
                p50,
                percentile(latencies, 0.9),
                percentile(latencies, 0.99),
                1e6 / statistics.fmean(latencies) * 1000,
                p50 / floors[case.transport],
            )
        )
    order = {"pipe": 0, "http": 1, "grpc": 2}
    rows.sort(key=lambda r: (order[r[0]], r[7]))
    print(f"\n`{EXPRESSION}` eval round trips, default session; {pinned}")
    print(f"python {sys.version.split()[0]}, beephost-client, {os.cpu_count()} CPUs\n")
    header = f"{'transport':9} {'case':26} {'n':>7} {'p50 us':>8} {'p90 us':>8} {'p99 us':>8} {'req/s':>8} {'x floor':>8}"
    print(header)
    print("-" * len(header))
    for transport, name, n, p50, p90, p99, rate, ratio in rows:
        print(
            f"{transport:9} {name:26} {n:7d} {p50:8.0f} {p90:8.0f} {p99:8.0f} {rate:8.0f} {ratio:8.2f}"
        )
    print("\nx floor: p50 over the p50 of the same transport's floor in this run.")
    http_rows = [r for r in rows if r[0] == "http"]
    print("HTTP clients for the same request, p50 over bare http.client:")
    for _, name, _, p50, *_ in http_rows:
        print(f"  {name:26} {p50 / http_client:6.2f}x")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time")
    parser.add_argument("--block", type=int, default=200, help="round trips per block")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin this process and every server (and worker) to one CPU",
    )
    parser.add_argument("--cpu", type=int, default=0, help="the CPU for --pin")
    parser.add_argument("--seed", type=int, default=None, help="shuffle seed")
    return known_args(parser, argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pinned = "not pinned (the OS places processes)"
    if args.pin:
        os.sched_setaffinity(0, {args.cpu})  # inherited by every process we start
        pinned = f"all processes pinned to CPU {args.cpu} (sched_setaffinity)"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="bhb", dir="/tmp"))
    servers = Servers(root)
    cases: list[Case] = []
    try:
        servers.start_all()
        cases = make_cases(servers.urls)
        results = measure(cases, args.seconds, args.block, random.Random(args.seed))
        report(results, pinned)
    except KeyboardInterrupt:
        return 130
    finally:
        for case in cases:
            with contextlib.suppress(Exception):
                case.close()
        if AsyncCase.runner is not None:
            AsyncCase.runner.close()
        servers.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
