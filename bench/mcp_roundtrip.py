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
   start included), then one more call in it (steady), then its end; shuffled and
   interleaved with as many claims from the same pool through the SDK
   (``start_backend`` to ``1+1`` answered: the baseline), the pool full again before
   each. ``bench/run`` (all.py, section 8) runs both parts, part 2 on its controller.
"""

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.*, tests.*

from bench._options import bench_parser, known_args
from bench.controller import START_TIMEOUT, answer
from bench.pools import FILL_TIMEOUT
from mcp import ClientSession
from tests.e2e.mcp_server import TOKEN, http_server, pooled_env
from tests.integration.contract.servers import ServerProcess
from tests.integration.mcp.support import http_session, stdio_session, structured

import beephost_client
from beephost_client import ControllerClient

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
    calls: int, seed: int | None, backend: ServerProcess, folder: Path
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
        order = [name for name in cases for _ in range(max(calls // BLOCK, 1))]
        random.Random(seed).shuffle(order)
        clock = time.perf_counter
        for name in order:
            for _ in range(BLOCK):
                started = clock()
                await cases[name]()
                times[name].append(clock() - started)
    return times


@dataclass
class FirstCalls:
    """Seconds per new MCP session, and the SDK's own pool claim beside them."""

    #: ``initialize`` and the first ``run_python("1+1")``: what a client waits for.
    session: list[float] = field(default_factory=list)
    #: The first call alone: pool claim, connect, interpreter start, the run.
    first: list[float] = field(default_factory=list)
    #: The call after it in the same session (steady).
    second: list[float] = field(default_factory=list)
    #: Baseline: the SDK's ``start_backend`` served by the same pool, to ``1+1``
    #: answered (bench/pools.py's "from a pool").
    sdk_claim: list[float] = field(default_factory=list)


def _pool_ready(api: ControllerClient, environment: str) -> int:
    return sum(p.ready for p in api.pools(environment) if p.type == "http")


def _wait_pool(api: ControllerClient, environment: str, size: int) -> None:
    deadline = time.monotonic() + FILL_TIMEOUT
    while _pool_ready(api, environment) < size:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the http pool of {environment} never refilled")
        time.sleep(0.1)


async def _mcp_session(url: str, times: FirstCalls) -> None:
    clock = time.perf_counter
    started = clock()
    async with http_session(url, TOKEN) as session:
        opened = clock()
        await _mcp_call(session)
        first = clock()
        await _mcp_call(session)
        second = clock()
    times.session.append(first - started)
    times.first.append(first - opened)
    times.second.append(second - first)


def _sdk_claim(api: ControllerClient, environment: str) -> float:
    started = time.perf_counter()
    backend = api.start_backend(environment, "http")
    try:
        if backend.claimed_at is None or backend.endpoint is None:
            raise RuntimeError(f"the pool did not serve the start: {backend}")
        answer(backend.endpoint, backend.token, time.monotonic() + START_TIMEOUT)
        return time.perf_counter() - started
    finally:
        api.stop_backend(backend.id)


def first_calls(
    controller_url: str,
    token: str | None,
    environment: str,
    sessions: int,
    seed: int | None,
    folder: Path,
) -> FirstCalls:
    """``sessions`` new MCP sessions over streamable HTTP on ``environment``'s warm
    http pool, shuffled and interleaved with as many SDK claims from the same pool;
    the pool full again before each."""
    times = FirstCalls()
    settings = pooled_env(controller_url, token, environment)
    with (
        ControllerClient(controller_url, token=token) as api,
        http_server(settings, folder / "mcp-http.log") as server,
    ):
        size = _pool_ready(api, environment)
        if size < 1:
            raise RuntimeError(f"{environment} has no ready http pool member")
        asyncio.run(_mcp_session(server.url, FirstCalls()))  # warm: imports, client
        order = ["mcp", "sdk"] * sessions
        random.Random(seed).shuffle(order)
        for case in order:
            _wait_pool(api, environment, size)
            if case == "mcp":
                asyncio.run(_mcp_session(server.url, times))
            else:
                times.sdk_claim.append(_sdk_claim(api, environment))
    return times


def first_call_lines(times: FirstCalls) -> list[str]:
    cases = {
        "new session: initialize + first call": times.session,
        "first call only (claim included)": times.first,
        "second call (steady)": times.second,
        "SDK: start_backend from the pool -> 1+1": times.sdk_claim,
    }
    lines = [f"  {name:42} {_ms(values)}" for name, values in cases.items()]
    mcp, sdk = statistics.median(times.session), statistics.median(times.sdk_claim)
    lines.append(f"  new MCP session / SDK pool claim (p50): {mcp / sdk:.2f}x")
    return lines


def steady_calls(calls: int, seed: int | None) -> dict[str, list[float]]:
    """Part 1 on a backend process of its own (no Docker)."""
    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp:
        folder = Path(tmp)
        backend = ServerProcess("http", folder, sys.executable, token=BACKEND_TOKEN)
        backend.start()
        try:
            return asyncio.run(steady(calls, seed, backend, folder))
        finally:
            backend.stop()


def steady_lines(times: dict[str, list[float]]) -> list[str]:
    lines = [f"  {name:32} {_ms(values)}" for name, values in times.items()]
    mcp, sdk, _ = (statistics.median(v) for v in times.values())
    lines.append(
        f"  MCP / SDK (p50): {mcp / sdk:.2f}x, the MCP layer adds {(mcp - sdk) * 1e3:.2f} ms"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    times = steady_calls(args.calls, args.seed)
    print("\nSTEADY CALLS: run_python('1+1') on one HTTP backend process")
    print("\n".join(steady_lines(times)))
    if args.controller and args.environment:
        with tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp:
            first = first_calls(
                args.controller,
                args.token,
                args.environment,
                args.sessions,
                args.seed,
                Path(tmp),
            )
        print(
            f"\nFIRST CALL OF A NEW SESSION: pool of {args.environment} at {args.controller}, over streamable HTTP"
        )
        print("\n".join(first_call_lines(first)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
