"""Server instructions per ``1+1`` round trip: HTTP and gRPC backends vs bare frameworks.

    uv run python bench/callgrind_web.py [--n N] [--cases a,b] [--keep DIR]

Each case's server process runs under ``valgrind --tool=callgrind`` (its session
workers natively: only the server is counted), started alone, one case after the other.
Once it answers (and, for the HTTP backend, its FastAPI app is built and the server has
settled), a warm-up, then ``callgrind_control -d`` dumps and zeroes the counters; then
``N`` and ``2N`` evaluations from one keep-alive client (http.client; the gRPC sync
stub), each window dumped. The first dump, once the first ``1+1`` is answered, is the
cold start in instructions (the server process's: imports, boot; for the HTTP backend
also whatever its FastAPI build thread ran by then). Instructions per request =
(Ir(2N) - Ir(N)) / N, which removes what a window costs whatever its length (the dump,
the timers that fire in it). Instruction counts do not move with machine load, unlike wall-clock benches. With
``--keep DIR`` the dumps stay there for ``callgrind_annotate`` (``.1``: the cold start,
``.4``: the 2N window). The ``-hop`` cases are the bare frameworks' two-hop floors
(``--hop``: the same endpoint awaiting ``eval`` in one worker process; ``asgi-bare-hop``:
a plain ASGI endpoint on uvicorn doing the same, bench/_bare_asgi.py; the worker runs
natively like the backends' workers): a backend's count minus its floor's is what its
own code costs above the hop.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from bench._harness import BACKENDS, PORT_CASES, GrpcEval, base_env
from bench.http_roundtrip import HTTPEval, free_port

BENCH_DIR = Path(__file__).resolve().parent
READY_TIMEOUT = 1200.0  # a server under callgrind imports ~50x slower
WARMUP = 100
CASES = (
    "http-backend",
    "fastapi-bare",
    "fastapi-bare-hop",
    "asgi-bare-hop",
    "grpc-backend",
    "grpc-bare",
    "grpc-bare-hop",
)


def server_argv(case: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The case's server (bench/_harness.PORT_CASES): a bench script with its flags,
    its workers native like the backends' (not counted), or our backend."""
    env = base_env()
    protocol, script, _ = PORT_CASES[case]
    if script:
        name, *flags = script
        return [sys.executable, str(BENCH_DIR / name), str(port), *flags], env
    module, prefix = BACKENDS[protocol]
    settings = {"METRICS_PORT": "0", "PREWARM": "0", "PORT": str(port)}
    env.update({prefix + key: value for key, value in settings.items()})
    return [sys.executable, "-m", module], env


def client_for(case: str, port: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """A checked ``1+1`` call and the client's close."""
    if PORT_CASES[case][0] == "grpc":
        grpc_client = GrpcEval(f"127.0.0.1:{port}", deadline=60.0)

        def call() -> None:
            grpc_client.block(1)

        return call, grpc_client.close
    http_client = HTTPEval(port)
    http_client.conn.timeout = 60.0
    return http_client.call, http_client.close


def first_answer(case: str, port: int) -> None:
    call, close = client_for(case, port)
    try:
        call()
    finally:
        close()


def wait_until(
    case: str, process: subprocess.Popen[bytes], probe: Callable[[], object]
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{case} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{case} not ready in {READY_TIMEOUT} s")
        try:
            probe()
            return
        except Exception:
            time.sleep(0.2)


def fastapi_built(port: int) -> None:
    """The HTTP backend builds its FastAPI app in a thread after it answers."""
    conn = HTTPEval(port).conn
    conn.timeout = 60.0
    try:
        conn.request("GET", "/api/sessions")
        if conn.getresponse().status != 200:
            raise OSError("not built")
    finally:
        conn.close()


def dump(pid: int) -> None:
    subprocess.run(
        ["callgrind_control", "-d", str(pid)], check=True, capture_output=True
    )


def total_ir(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def measure(case: str, n: int, out: Path) -> tuple[float, int]:
    """Server Ir per request, and from exec to the first ``1+1`` answered."""
    port = free_port()
    argv, env = server_argv(case, port)
    log = (out / f"{case}.log").open("wb")
    process = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}/{case}.%p.out",
            *argv,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(case, process, lambda: first_answer(case, port))
        dump(process.pid)  # .1: exec to the first 1+1 answered (the cold start)
        if case == "http-backend":
            wait_until(case, process, lambda: fastapi_built(port))
        time.sleep(3.0)  # past the http backend's settle (beephost_core.memory)
        call, _close = client_for(case, port)
        for _ in range(WARMUP):
            call()
        dump(process.pid)  # .2: the rest of the start-up and the warm-up
        for count in (n, 2 * n):
            for _ in range(count):
                call()
            dump(process.pid)  # .3: n requests, .4: 2n
        deadline = time.monotonic() + 30
        files = [Path(f"{out}/{case}.{process.pid}.out.{i}") for i in (1, 3, 4)]
        while not all(f.exists() and total_ir(f) for f in files):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{case}: dumps missing")
            time.sleep(0.2)
        cold, one, two = (total_ir(f) for f in files)
        return (two - one) / n, cold
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="requests per window")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--keep", type=Path, help="keep the dumps in this folder")
    args = parser.parse_args(argv)
    results: dict[str, float] = {}
    colds: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bh-cg-") as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for case in args.cases.split(","):
            results[case], colds[case] = measure(case, args.n, out)
            print(
                f"{case:14} {results[case]:>12,.0f} server Ir/request, "
                f"{colds[case]:>15,} Ir to the first 1+1",
                flush=True,
            )
    for ours, bare in (
        ("http-backend", "fastapi-bare"),
        ("grpc-backend", "grpc-bare"),
        ("fastapi-bare-hop", "fastapi-bare"),
        ("grpc-bare-hop", "grpc-bare"),
        ("http-backend", "fastapi-bare-hop"),
        ("http-backend", "asgi-bare-hop"),
        ("grpc-backend", "grpc-bare-hop"),
    ):
        if ours in results and bare in results:
            print(
                f"{ours} - {bare}: {results[ours] - results[bare]:+,.0f} Ir/request "
                f"({results[ours] / results[bare]:.2f}x)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
