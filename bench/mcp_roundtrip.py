"""The MCP layer's own cost: a ``tools/call`` of ``run_python("1+1")`` to its reply,
beside the same run through the SDK, in one run; and a new MCP session's first call.

    uv run python bench/mcp_roundtrip.py [--calls N] [--sessions N] [--seed N]
                               [--controller URL --environment NAME [--token T]]

1. STEADY CALLS: one HTTP backend process (the stdlib interpreter of this machine, a
   token), the MCP server over stdio on it as a fixed backend (``beephost-mcp``, driven
   by the MCP SDK's ``ClientSession``), and the SDK's ``AsyncClient`` in one interpreter
   session of the same backend, as the server runs code. ``--calls`` (300) calls each,
   in blocks of 20 in a shuffled, interleaved order; p50 and p90, and the MCP/SDK ratio.
2. FIRST CALL OF A NEW SESSION, with ``--controller`` and ``--environment`` (an
   environment with a warm http pool; ``--token`` the controller's): ``beephost-mcp``
   over streamable HTTP on that pool; ``--sessions`` (10) times, a new MCP session's
   ``initialize`` and first ``run_python("1+1")`` (pool claim, connect, interpreter
   start included), then one more call in it (steady), then its end. Sessions run one
   after another, so the pool refills between them only as fast as it does.
"""

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.*, tests.*

from bench._options import bench_parser, known_args
from mcp import ClientSession
from tests.e2e.mcp_server import TOKEN, http_server, pooled_env
from tests.integration.contract.servers import ServerProcess
from tests.integration.mcp.support import http_session, stdio_session, structured

import beephost_client

BLOCK = 20
BACKEND_TOKEN = "bench-backend-token-0123456789"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__ or "")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--controller", default=None)
    parser.add_argument("--environment", default=None)
    parser.add_argument("--token", default=None)
    return known_args(parser, argv)


async def _mcp_call(session: ClientSession) -> None:
    result = await session.call_tool("run_python", {"code": "1+1"})
    if structured(result).get("result") != "2":
        raise RuntimeError(f"unexpected reply {result}")


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    return f"p50 {p50 * 1e3:7.2f} ms   p90 {p90 * 1e3:7.2f} ms   (n={len(ordered)})"


async def steady(
    args: argparse.Namespace, backend: ServerProcess, folder: Path
) -> dict[str, list[float]]:
    env = {
        "BEEPHOST_MCP_BACKEND_URL": backend.url,
        "BEEPHOST_MCP_BACKEND_TOKEN": BACKEND_TOKEN,
    }
    times: dict[str, list[float]] = {
        "MCP tools/call run_python": [],
        "SDK session.execute": [],
        "SDK session.stream": [],
    }
    async with (
        stdio_session(env, folder / "mcp.log") as session,
        beephost_client.aconnect(backend.url, token=BACKEND_TOKEN) as client,
        client.session() as sdk,
    ):

        async def sdk_call() -> None:
            if (await sdk.execute("1+1")).value != 2:
                raise RuntimeError("unexpected SDK reply")

        async def sdk_stream() -> None:
            # What the server does: a streamed run (progress notifications).
            async with sdk.stream("1+1") as events:
                async for _ in events:
                    pass
            if events.result.value != 2:
                raise RuntimeError("unexpected SDK reply")

        cases = {
            "MCP tools/call run_python": lambda: _mcp_call(session),
            "SDK session.execute": sdk_call,
            "SDK session.stream": sdk_stream,
        }
        for call in cases.values():  # warm both paths (connections, interpreter)
            for _ in range(10):
                await call()
        order = [name for name in cases for _ in range(max(args.calls // BLOCK, 1))]
        random.Random(args.seed).shuffle(order)
        clock = time.perf_counter
        for name in order:
            for _ in range(BLOCK):
                started = clock()
                await cases[name]()
                times[name].append(clock() - started)
    return times


async def first_calls(args: argparse.Namespace, folder: Path) -> dict[str, list[float]]:
    settings = pooled_env(args.controller, args.token, args.environment)
    times: dict[str, list[float]] = {
        "new session: initialize + first call": [],
        "first call only": [],
        "second call": [],
    }
    with http_server(settings, folder / "mcp-http.log") as server:
        for _ in range(args.sessions):
            clock = time.perf_counter
            started = clock()
            async with http_session(server.url, TOKEN) as session:
                opened = clock()
                await _mcp_call(session)
                first = clock()
                await _mcp_call(session)
                second = clock()
            times["new session: initialize + first call"].append(first - started)
            times["first call only"].append(first - opened)
            times["second call"].append(second - first)
    return times


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp:
        folder = Path(tmp)
        backend = ServerProcess("http", folder, sys.executable, token=BACKEND_TOKEN)
        backend.start()
        try:
            times = asyncio.run(steady(args, backend, folder))
        finally:
            backend.stop()
        print("\nSTEADY CALLS: run_python('1+1') on one HTTP backend process")
        for name, values in times.items():
            print(f"  {name:32} {_ms(values)}")
        mcp, sdk, _ = (statistics.median(v) for v in times.values())
        print(
            f"  MCP / SDK (p50): {mcp / sdk:.2f}x, the MCP layer adds {(mcp - sdk) * 1e3:.2f} ms"
        )
        if args.controller and args.environment:
            first = asyncio.run(first_calls(args, folder))
            print(
                f"\nFIRST CALL OF A NEW SESSION: pool of {args.environment} at {args.controller}, over streamable HTTP"
            )
            for name, values in first.items():
                print(f"  {name:40} {_ms(values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
