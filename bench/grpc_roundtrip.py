"""Round-trip latency of the gRPC backend's Evaluate against a bare grpcio server.

    uv run python bench/grpc_roundtrip.py [--seconds S] [--block N] [--pin] [--seed N]

Starts, at once and as separate processes: beephost-rpc-backend (grpc.aio on uvloop, then
the default session's worker process), BARE GRPCIO (bench/_bare_grpc.py: the same
generated Executor service, Evaluate only, evaluating in-process, same loop setup), its
TWO-HOP FLOOR (``--hop``: the same Evaluate awaiting ``eval`` in one worker process) and
the raw Unix-socket FLOOR (bench/_floor_server.py). Then calls
``Evaluate(expression="1+1")`` through the generated sync stub with a deadline, one
channel per server (a raw NDJSON socket for the floor), in short blocks run in a
shuffled, interleaved order, so that every case sees the same machine noise; each case
is reported as a ratio to bare grpcio and to the floor measured in the same run
(absolute numbers on a shared 2-vCPU machine move by 2x between runs, the ratios do not;
see shared/research/platform.md, "Benchmarking on these machines").
Goal (the issue's): our p50 within 1.2x of the bare framework despite the worker hop.
CPU per request of the client thread, the server and its workers comes from /proc.

The harness it measures with is bench/_harness.py.
"""

import sys
from pathlib import Path

# Run as a script, sys.path[0] is bench/: make the sibling scripts importable as
# bench.* (as mypy sees them) from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import (
    entry,
    parse_args,
    port_spec,
    print_preamble,
    print_tables,
    run,
    socket_spec,
)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__, seconds=5.0)
    result = run(
        args,
        lambda tmp: [
            socket_spec("floor", tmp),
            port_spec("grpc-bare", tmp),
            port_spec("grpc-bare-hop", tmp),
            port_spec("grpc-backend", tmp),
        ],
        "bhb-grpc-",
    )
    by_name = {r.name: r for r in result.results}
    bare, floor = by_name["grpc-bare"].p(0.5), by_name["floor"].p(0.5)
    print_preamble("grpc_roundtrip", args, result)
    print_tables(
        result.results,
        {
            "p50 ÷ bare grpcio": lambda r: f"{r.p(0.5) / bare:.2f}x",
            "p50 ÷ floor": lambda r: f"{r.p(0.5) / floor:.2f}x",
        },
        workers="the backend's session worker",
    )
    ours, two_hop = by_name["grpc-backend"].p(0.5), by_name["grpc-bare-hop"].p(0.5)
    ratio = ours / bare
    print(
        f"VERDICT: goal 'our p50 within 1.2x of the bare framework despite the worker "
        f"hop' {'MET' if ratio <= 1.2 else 'NOT MET'}: grpc-backend p50 {ours:.1f} µs "
        f"vs bare grpcio {bare:.1f} µs = {ratio:.2f}x (floor {floor:.1f} µs); "
        f"grpc.aio's two-hop floor {two_hop:.1f} µs = {two_hop / bare:.2f}x bare "
        f"(the goal is {'' if two_hop / bare <= 1.2 else 'not '}reachable with the "
        f"hop), ours {ours / two_hop:.2f}x that floor"
    )
    return 0


if __name__ == "__main__":
    entry(main)
