"""File transfers through local backend processes (no Docker): CPU and instructions.

    uv run python bench/files_local.py [--mib N] [--rounds R] [--kinds pipe,http,grpc]
    uv run python bench/files_local.py --callgrind server|client [--mib 4] [--rounds 2]

Starts a pipe, an HTTP and a gRPC backend as local processes (workspace in a temporary
directory, no token), then writes a ``--mib`` MiB file of random bytes with
``client.files.write`` (a local path) and downloads it back with
``client.files.download``, SHA-256 checked, ``--rounds`` times per transport. Reported
per transport and direction: the median wall time and MiB/s, and the CPU time
(user + system, from /proc) of the client and of the server's process tree per
transfer (their mean: /proc counts 10 ms ticks): on a shared machine CPU time is
steadier than wall time.

``--callgrind server``: each backend runs under ``valgrind --tool=callgrind``; the
instructions of one transfer are the difference between a run of ``--rounds`` transfers
and a run of none, divided by ``--rounds`` (start-up cancels out). ``--callgrind client``:
the same for a client process. Output files stay in ``--out`` (default
``build/callgrind-files``) for ``callgrind_annotate``. Not yet trustworthy: in the one
run made (pipe, 4 MiB) the server's run of 2 transfers counted no more than the run
of none (1.344 G each), so the transfers' work went uncounted; the CPU times are the
numbers to use until that is understood.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.files import make_file, sha256_of
from bench.http_roundtrip import free_port

import beephost_client

KINDS = {
    "pipe": ("beephost_pipe_backend", "BEEPHOST_PIPE_BACKEND_"),
    "http": ("beephost_http_backend", "BEEPHOST_HTTP_BACKEND_"),
    "grpc": ("beephost_rpc_backend", "BEEPHOST_RPC_BACKEND_"),
}
READY_TIMEOUT = 180.0


def tree_cpu(pid: int) -> float:
    """User + system seconds of ``pid`` and its live descendants."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
        except OSError:
            continue
        pending.extend(int(child) for child in children.split())
    return total


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


@contextmanager
def backend(
    kind: str, root: Path, wrap: list[str]
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    module, prefix = KINDS[kind]
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
    settings = {
        "METRICS_PORT": "0",
        "WORKSPACE_DIR": str(root / f"{kind}-workspace"),
        "DRAIN_TIMEOUT": "1",
    }
    if kind == "pipe":
        url = f"unix://{root / 'pipe.sock'}"
        settings["SOCKET_PATH"] = str(root / "pipe.sock")
    else:
        port = free_port()
        settings.update(HOST="127.0.0.1", PORT=str(port))
        url = f"{kind}://127.0.0.1:{port}"
    env.update({prefix + key: value for key, value in settings.items()})
    log = (root / f"{kind}.log").open("wb")
    process = subprocess.Popen(
        [*wrap, sys.executable, "-m", module], env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                with beephost_client.connect(url, timeout=60) as client:
                    if client.evaluate("1+1") == 2:
                        break
            except (beephost_client.Unavailable, beephost_client.ConnectError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / f"{kind}.log").read_text()[-3000:])
            time.sleep(0.2)
        yield url, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def transfers(url: str, local: Path, back: Path, expected: str, rounds: int) -> None:
    with beephost_client.connect(url, timeout=600) as client:
        for _ in range(rounds):
            client.files.write("bench.bin", local)
            back.unlink(missing_ok=True)
            client.files.download("bench.bin", back)
            assert sha256_of(back) == expected


def measure(
    url: str,
    server: subprocess.Popen[bytes],
    local: Path,
    back: Path,
    expected: str,
    rounds: int,
) -> dict[str, list[tuple[float, float, float]]]:
    """(wall, client CPU, server CPU) per round, per direction."""
    found: dict[str, list[tuple[float, float, float]]] = {"up": [], "down": []}

    def timed(direction: str, action: Callable[[], object]) -> None:
        wall, mine, theirs = time.perf_counter(), own_cpu(), tree_cpu(server.pid)
        action()
        found[direction].append(
            (
                time.perf_counter() - wall,
                own_cpu() - mine,
                tree_cpu(server.pid) - theirs,
            )
        )

    with beephost_client.connect(url, timeout=600) as client:
        client.files.write("warm.bin", b"warm")  # connections, worker, imports
        client.files.read("warm.bin")
        for _ in range(rounds):
            timed("up", lambda: client.files.write("bench.bin", local))
            back.unlink(missing_ok=True)
            timed("down", lambda: client.files.download("bench.bin", back))
            assert sha256_of(back) == expected
    return found


def report(
    kind: str, mib: int, found: dict[str, list[tuple[float, float, float]]]
) -> None:
    for direction, rows in found.items():
        wall = statistics.median(r[0] for r in rows)
        # CPU times tick every 10 ms: their mean over the rounds, not a median.
        client = statistics.mean(r[1] for r in rows)
        server = statistics.mean(r[2] for r in rows)
        print(
            f"| {kind} | {direction} | {wall * 1000:.0f} ms | {mib / wall:.0f} MiB/s "
            f"| client {client * 1000:.0f} ms CPU | server {server * 1000:.0f} ms CPU |"
        )


def callgrind_run(
    kind: str,
    side: str,
    root: Path,
    out: Path,
    rounds: int,
    local: Path,
    back: Path,
    expected: str,
) -> int:
    """Instructions of one run (``rounds`` transfers) of ``side`` under callgrind."""
    target = out / f"{kind}-{side}-{rounds}.out"
    tool = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={target}.%p",
        "--trace-children=no",
    ]
    for old in out.glob(f"{target.name}.*"):
        old.unlink()
    if side == "server":
        with backend(kind, root, tool) as (url, _):
            transfers(url, local, back, expected, rounds)
    else:
        with backend(kind, root, []) as (url, _):
            transfers(url, local, back, expected, 0)  # warm the server up
            subprocess.run(
                [
                    *tool,
                    sys.executable,
                    __file__,
                    "--client-only",
                    url,
                    str(local),
                    str(back),
                    expected,
                    str(rounds),
                ],
                check=True,
            )
    total = 0
    for produced in out.glob(f"{target.name}.*"):
        for line in produced.read_text().splitlines():
            if line.startswith("summary:") or line.startswith("totals:"):
                total = max(total, int(line.split()[1]))
                break
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kinds", default="pipe,http,grpc")
    parser.add_argument("--callgrind", choices=("server", "client"))
    parser.add_argument("--out", type=Path, default=Path("build/callgrind-files"))
    parser.add_argument("--client-only", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_only:
        url, local, back, expected, rounds = args.client_only
        transfers(url, Path(local), Path(back), expected, int(rounds))
        return 0
    kinds = args.kinds.split(",")
    with tempfile.TemporaryDirectory(prefix="files-local-") as tmp:
        root = Path(tmp)
        local, back = root / "source.bin", root / "back.bin"
        expected = make_file(local, args.mib)
        if args.callgrind:
            args.out.mkdir(parents=True, exist_ok=True)
            print(f"{args.mib} MiB, instructions per round trip (write + download)")
            for kind in kinds:
                runs = [
                    callgrind_run(
                        kind, args.callgrind, root, args.out, n, local, back, expected
                    )
                    for n in (0, args.rounds)
                ]
                per = (runs[1] - runs[0]) / args.rounds
                print(f"| {kind} | {args.callgrind} | {per / 1e6:.1f} M instructions |")
            return 0
        print(f"{args.mib} MiB, median of {args.rounds} rounds")
        for kind in kinds:
            with backend(kind, root, []) as (url, server):
                report(
                    kind,
                    args.mib,
                    measure(url, server, local, back, expected, args.rounds),
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
