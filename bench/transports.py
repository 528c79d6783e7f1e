"""Every transport's ``1+1`` round trip in one table, beside a Jupyter kernel's execute.

    uv run python bench/transports.py [--seconds S] [--block N] [--pin] [--seed N]

Starts, at once and as separate processes: the raw Unix-socket FLOOR
(bench/_floor_server.py), the pipe backend, the TWO-HOP FLOOR (bench/_relay_server.py:
the leanest asyncio server relaying to a worker process), RPyC classic
(bench/_rpyc_server.py), BARE
FASTAPI (bench/_bare_fastapi.py), its two-hop floor (``--hop``), uvicorn's (a plain ASGI
endpoint awaiting a worker, bench/_bare_asgi.py) and our HTTP backend,
BARE GRPCIO (bench/_bare_grpc.py), its two-hop floor and our gRPC backend, and a
Jupyter kernel (ipykernel through
jupyter_client.KernelManager; bench/_jupyter.py). Then runs one ``1+1`` round trip per
request through each, with the clients of bench/pipe_roundtrip.py (raw NDJSON socket,
``rpyc.classic``), bench/http_roundtrip.py (keep-alive http.client) and
bench/_harness.py (generated sync stub, with a deadline); the Jupyter client does
what a notebook does, ``kc.execute("1+1")`` then waits for the execute_reply and the
``idle`` status on iopub. Short blocks of every case run in a shuffled, interleaved
order so that each sees the same machine noise; each case is reported as a ratio to the
floor measured in the same run and as "x faster than Jupyter" (Jupyter p50 / its p50).
See shared/research/platform.md, "Benchmarking on these machines".
Goal (the issue's): every transport at least 10x faster than a Jupyter kernel's execute
round trip.
"""

import functools
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from bench import _harness, _jupyter, pipe_roundtrip
from bench._harness import Spec

GOAL = 10.0  # x faster than Jupyter
JUPYTER_BLOCK_SCALE = 0.05  # ~8 ms a round trip: 10 per block of 200
#: Our backends' cases (the rest are baselines).
BACKEND_CASES = ("pipe-backend", "http-backend", "grpc-backend")
#: The cases on a loopback port (bench/_harness.PORT_CASES), in the tables' order.
PORT_CASES = (
    "fastapi-bare",
    "fastapi-bare-hop",
    "asgi-bare-hop",
    "http-backend",
    "grpc-bare",
    "grpc-bare-hop",
    "grpc-backend",
)


def pipe_spec(tmp: Path) -> Spec:
    path = tmp / "pipe.sock"
    server = _harness.backend_server("pipe", "pipe", tmp, path)
    return Spec(
        "pipe-backend",
        server,
        _harness.socket_probe(server),
        functools.partial(pipe_roundtrip.LineClient, str(path)),
        "beephost pipe backend: server + worker process (2 hops), raw socket client",
        session_client=functools.partial(
            pipe_roundtrip.make_client, "pipe", str(path), True
        ),
    )


def jupyter_spec(tmp: Path) -> Spec:
    server = _jupyter.KernelServer("jupyter", tmp)
    return Spec(
        "jupyter",
        server,
        server.probe,
        lambda: _jupyter.KernelEval(server),
        "ipykernel via jupyter_client: execute, then execute_reply + idle on iopub",
        block_scale=JUPYTER_BLOCK_SCALE,
    )


def build(tmp: Path) -> list[Spec]:
    return [
        _harness.socket_spec("floor", tmp),
        pipe_spec(tmp),
        _harness.socket_spec("relay", tmp),
        _harness.socket_spec("rpyc", tmp),
        *(_harness.port_spec(name, tmp) for name in PORT_CASES),
        jupyter_spec(tmp),  # last: its probe blocks up to ~1 s
    ]


def main(argv: list[str] | None = None) -> int:
    args = _harness.parse_args(argv, __doc__, seconds=3.0)
    run = _harness.run(args, build, "bhb-transports-")
    by_name = {r.name: r for r in run.results}
    floor, jupyter = by_name["floor"].p(0.5), by_name["jupyter"].p(0.5)
    _harness.print_preamble("transports", args, run)
    _harness.print_tables(
        run.results,
        {
            "p50 ÷ floor": lambda r: f"{r.p(0.5) / floor:.2f}x",
            "x faster than Jupyter": lambda r: f"{jupyter / r.p(0.5):.1f}x",
        },
        workers="the backends' session workers",
    )
    ours = [r for r in run.results if r.name in BACKEND_CASES]
    slow = [r for r in ours if jupyter / r.p(0.5) < GOAL]
    slowest = min(ours, key=lambda r: jupyter / r.p(0.5))
    print(
        f"VERDICT: goal 'every transport at least {GOAL:g}x faster than a Jupyter "
        f"kernel's execute round trip' {'NOT MET' if slow else 'MET'}: Jupyter p50 "
        f"{jupyter / 1000:.2f} ms; slowest {slowest.name} {slowest.p(0.5):.1f} µs = "
        f"{jupyter / slowest.p(0.5):.1f}x faster"
        + (f"; below {GOAL:g}x: {', '.join(r.name for r in slow)}" if slow else "")
    )
    for ours_name, bare_name in (
        ("http-backend", "fastapi-bare"),
        ("grpc-backend", "grpc-bare"),
    ):
        ratio = by_name[ours_name].p(0.5) / by_name[bare_name].p(0.5)
        print(f"  {ours_name} p50 ÷ {bare_name} p50 = {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    _harness.entry(main)
