"""Round-trip latency of the HTTP backend's POST /api/eval against bare FastAPI.

    uv run python bench/http_roundtrip.py [--seconds S] [--pin]

Starts, at once and as separate processes: beephost-http-backend (uvicorn + FastAPI, then
the default session's worker process), the same without a token and with one, BARE
FASTAPI (bench/_bare_fastapi.py: an idiomatic FastAPI eval endpoint evaluating in-process,
served by the same uvicorn configuration) and the raw Unix-socket FLOOR
(bench/_floor_server.py). Then evaluates ``1+1`` from one blocking keep-alive http.client
connection per server (a raw socket for the floor), in short blocks run in a shuffled,
interleaved order, so that every case sees the same machine noise; each case is reported
as a ratio to bare FastAPI and to the floor measured in the same run (absolute numbers on
a shared 2-vCPU machine move by 2x between runs, the ratios do not; see
shared/research/platform.md, "Benchmarking on these machines").
CPU per request of each server (workers included) comes from /proc.
"""

import functools
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable

from bench._options import bench_parser

BENCH_DIR = Path(__file__).resolve().parent
BODY = json.dumps({"expression": "1+1"}).encode()
TOKEN = "bench-token-0123456789abcdef"
READY_TIMEOUT = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class HTTPEval:
    """Keep-alive http.client: POST /api/eval, read the whole reply, check it."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port)
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.body = BODY

    def open_session(self) -> None:
        """Evaluate in a new session of its own from now on (our backend only)."""
        self.conn.request("POST", "/api/sessions", b"{}", self.headers)
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 201:
            raise RuntimeError(f"unexpected reply {response.status} {body!r}")
        session = json.loads(body)["session"]
        self.body = json.dumps({"expression": "1+1", "session": session}).encode()

    def call(self) -> None:
        try:
            response = self._post()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # uvicorn closes a keep-alive connection idle for 5 s (bench/all.py's
            # client processes wait their turn): reconnect once, as urllib3 would.
            self.conn.close()
            response = self._post()
        body = response.read()
        if response.status != 200 or json.loads(body) != {"value": 2}:
            raise RuntimeError(f"unexpected reply {response.status} {body!r}")

    def _post(self) -> http.client.HTTPResponse:
        self.conn.request("POST", "/api/eval", self.body, self.headers)
        return self.conn.getresponse()

    def close(self) -> None:
        self.conn.close()


class FloorEval:
    """The raw NDJSON client of the floor server."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.reader = self.sock.makefile("rb", buffering=1 << 16)
        self.next_id = 0

    def call(self) -> None:
        self.next_id += 1
        message = {"id": self.next_id, "type": "eval", "params": {"expression": "1+1"}}
        self.sock.sendall(json.dumps(message).encode() + b"\n")
        reply = json.loads(self.reader.readline())
        if reply.get("result") != {"value": 2}:
            raise RuntimeError(f"unexpected reply {reply!r}")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``argv`` started with ``env``, its stdout and stderr written to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def terminate(
    process: subprocess.Popen[bytes], grace: float, reap: float | None = None
) -> None:
    """SIGTERM; SIGKILL if it is still running after ``grace`` s, then wait for it (up
    to ``reap`` s, if given)."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(reap)


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]
    probe: Callable[[], bool]
    client: Callable[[], HTTPEval | FloorEval]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    samples: list[int] = field(default_factory=list)
    cpu_before: int = 0
    cpu_after: int = 0

    def start(self) -> None:
        self.process = spawn(self.argv, self.env, self.log)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            terminate(self.process, 15)

    def cpu_ticks(self) -> int:
        assert self.process is not None
        return sum(
            _ticks(pid) for pid in [self.process.pid, *_descendants(self.process.pid)]
        )


def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_ready(port: int) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/ready")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    return probe


def build_servers(tmp: Path) -> list[Server]:
    servers = []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("BEEPHOST_")}
    for name, token in (("http-backend", None), ("http-backend+token", TOKEN)):
        port = free_port()
        env = {
            **base_env,
            "BEEPHOST_HTTP_BACKEND_PORT": str(port),
            "BEEPHOST_HTTP_BACKEND_PREWARM": "0",
        }
        if token:
            env["BEEPHOST_HTTP_BACKEND_TOKEN"] = token
        servers.append(
            Server(
                name,
                [sys.executable, "-m", "beephost_http_backend"],
                env,
                http_ready(port),
                functools.partial(HTTPEval, port, token),
                tmp / f"{name}.log",
            )
        )
    port = free_port()
    servers.append(
        Server(
            "fastapi-bare",
            [sys.executable, str(BENCH_DIR / "_bare_fastapi.py"), str(port)],
            base_env,
            http_ready(port),
            functools.partial(HTTPEval, port),
            tmp / "fastapi-bare.log",
        )
    )
    path = str(tmp / "floor.sock")
    servers.append(
        Server(
            "floor",
            [sys.executable, str(BENCH_DIR / "_floor_server.py"), path],
            base_env,
            lambda: os.path.exists(path),
            lambda: FloorEval(path),
            tmp / "floor.log",
        )
    )
    return servers


def percentile(ordered: list[int], q: float) -> float:
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index] / 1000.0


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time")
    parser.add_argument("--block", type=int, default=50, help="requests per block")
    parser.add_argument("--pin", action="store_true", help="run everything on one CPU")
    args = parser.parse_args(argv)
    if args.pin:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # inherited
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="bh-bench-") as tmpdir:
        servers = build_servers(Path(tmpdir))
        for server in servers:
            server.start()  # all at once: every server sees the same warm-up
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            for server in servers:
                while not server.probe():
                    if time.monotonic() > deadline or (
                        server.process and server.process.poll() is not None
                    ):
                        raise RuntimeError(
                            f"{server.name} did not start: {server.log.read_text()[-2000:]}"
                        )
                    time.sleep(0.05)
            clients = {s.name: s.client() for s in servers}
            for server in servers:  # warm-up: JIT-free Python still warms caches
                for _ in range(300):
                    clients[server.name].call()
            for server in servers:
                server.cpu_before = server.cpu_ticks()
            end = time.monotonic() + args.seconds
            clock = time.perf_counter_ns
            while time.monotonic() < end:
                order = list(servers)
                rng.shuffle(order)
                for server in order:
                    call = clients[server.name].call
                    samples = server.samples
                    for _ in range(args.block):
                        started = clock()
                        call()
                        samples.append(clock() - started)
            for server in servers:
                server.cpu_after = server.cpu_ticks()
            for client in clients.values():
                client.close()
        finally:
            for server in servers:
                server.stop()
    by_name = {s.name: s for s in servers}
    bare = sorted(by_name["fastapi-bare"].samples)
    floor = sorted(by_name["floor"].samples)
    rows = [
        "| case | p50 µs | p90 µs | p99 µs | x bare FastAPI (p50) | x floor (p50) | server CPU µs/req |",
        "|---|---|---|---|---|---|---|",
    ]
    for server in servers:
        ordered = sorted(server.samples)
        cpu_us = (
            (server.cpu_after - server.cpu_before) / CLOCK_TICKS * 1e6 / len(ordered)
        )
        rows.append(
            f"| {server.name} | {percentile(ordered, 0.5):.0f} | {percentile(ordered, 0.9):.0f} "
            f"| {percentile(ordered, 0.99):.0f} "
            f"| {percentile(ordered, 0.5) / percentile(bare, 0.5):.2f} "
            f"| {percentile(ordered, 0.5) / percentile(floor, 0.5):.2f} | {cpu_us:.0f} |"
        )
    print("\n".join(rows))
    count = len(by_name["floor"].samples)
    pinned = "pinned to one CPU" if args.pin else "unpinned"
    print(
        f"\n{count} requests per case in shuffled blocks of {args.block}, {pinned}; "
        "keep-alive http.client clients (a raw socket for the floor); "
        "server CPU includes worker processes."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
