"""Instructions per ``1+1`` in each process of the pipe path, under callgrind.

    uv run python bench/callgrind_hop.py [--counts 100 600] [--clients 1] [--sessions]
                                         [--raw] [--keep DIR] [--server pipe|relay|floor]

Instruction counts are repeatable on a loaded machine where wall clock is not. Starts
the pipe backend under ``valgrind --tool=callgrind --trace-children=yes`` (so the
session's worker is measured too), then, for each ``--counts`` N, runs a client process
(the sync SDK, ``client.evaluate("1+1")`` N times; also under callgrind) and dumps the
server's and worker's counters (``callgrind_control --dump``) before and after it. The
cost per request of each process is the difference between two counts divided by the
difference of N: startup, connection and hello cancel out. ``--clients K`` runs K
client processes at once (each N requests; their counts are summed), ``--sessions``
gives each its own session (a worker each) instead of the shared default one.
``--keep DIR`` keeps the callgrind files (per-function costs: ``callgrind_annotate``).
``--server relay`` measures the two-hop floor (bench/_relay_server.py: the leanest server
relaying to a worker process) and ``--server floor`` the one-hop floor
(bench/_floor_server.py: eval in the server) the same way, with the raw client: the
pipe backend's server minus the relay's is what its implementation costs above the hop
(validation, sessions, deadlines, limits, metrics and the code that carries them).
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLIENT = """
import sys, beephost_client
count, url, own = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
with beephost_client.connect(url, timeout=600) as client:
    target = client.open_session() if own else client
    for _ in range(count):
        assert target.evaluate("1+1") == 2
"""
# --raw: the bench's raw NDJSON client (bench/pipe_roundtrip.py's LineClient): a quick
# start under callgrind, and the server's and worker's counts are the same.
RAW_CLIENT = """
import json, socket, sys
count, path, own = int(sys.argv[1]), sys.argv[2].removeprefix("unix://"), sys.argv[3]
sock = socket.socket(socket.AF_UNIX)
sock.connect(path)
reader = sock.makefile("rb")
params = {"expression": "1+1"}
if own == "1":
    sock.sendall(b'{"id":0,"type":"session.open","params":{}}\\n')
    params["session"] = json.loads(reader.readline())["result"]["session"]
template = '{"id":%d,"type":"eval","params":' + json.dumps(params) + '}\\n'
for i in range(1, count + 1):
    sock.sendall((template % i).encode())
    assert b'"value":2' in reader.readline()
"""

# The server, with time for a worker to start under callgrind on a loaded machine
# (the executor's spawn timeout is no setting).
SERVER = """
import dataclasses
from beephost_pipe_backend import __main__ as entry, settings

executor_config = settings.Settings.executor_config
settings.Settings.executor_config = lambda self: dataclasses.replace(
    executor_config(self), spawn_timeout=600.0
)
entry.main(["serve"])
"""

_TOTALS = re.compile(rb"^totals: (\d+)", re.MULTILINE)


def _valgrind(out: Path, *, children: bool) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        f"--trace-children={'yes' if children else 'no'}",
        f"--callgrind-out-file={out}",
        "--log-file=/dev/null",
    ]


def _total(path: Path) -> int:
    return sum(int(m) for m in _TOTALS.findall(path.read_bytes()))


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        kids += [int(k) for k in text]
    return kids


def _dump(pid: int, root: Path, label: str) -> int:
    """Dump ``pid``'s counters (which zeroes them); the instructions since the last."""
    before = set(root.glob(f"cg.{pid}*"))
    subprocess.run(
        ["callgrind_control", "--dump=" + label, str(pid)],
        check=True,
        capture_output=True,
    )
    deadline = time.monotonic() + 60
    while True:
        new = set(root.glob(f"cg.{pid}*")) - before
        if new:
            time.sleep(0.2)  # let it finish writing
            return sum(_total(p) for p in new)
        if time.monotonic() > deadline:
            raise RuntimeError(f"no dump from {pid}")
        time.sleep(0.1)


def _run_clients(
    python: str,
    url: str,
    count: int,
    clients: int,
    own: bool,
    root: Path,
    tag: str,
    script: str = CLIENT,
) -> int:
    procs = []
    for i in range(clients):
        out = root / f"client.{tag}.{i}"
        cmd = [*_valgrind(out, children=False), python, "-c", script]
        procs.append(
            (subprocess.Popen([*cmd, str(count), url, "1" if own else "0"]), out)
        )
    total = 0
    for proc, out in procs:
        if proc.wait() != 0:
            raise RuntimeError(f"client failed: {proc.returncode}")
        total += _total(out)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs=2, default=(100, 600))
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--sessions", action="store_true")
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--raw", action="store_true", help="raw NDJSON client")
    parser.add_argument(
        "--server",
        choices=("pipe", "relay", "floor"),
        default="pipe",
        help="the pipe backend, or a floor of bench/ (raw client)",
    )
    args = parser.parse_args()
    if args.server != "pipe" and (args.sessions or not args.raw):
        parser.error("--server relay|floor: only with --raw, and without --sessions")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    root = Path(args.keep or tempfile.mkdtemp(prefix="beephost-cg-"))
    root.mkdir(parents=True, exist_ok=True)
    sock = Path(tempfile.mkdtemp(prefix="bh-cg-")) / "pipe.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEEPHOST_")}
    env.update(
        BEEPHOST_PIPE_BACKEND_SOCKET_PATH=str(sock),
        BEEPHOST_PIPE_BACKEND_METRICS_PORT="0",
        BEEPHOST_PIPE_BACKEND_PREWARM="0",
        BEEPHOST_PIPE_BACKEND_DRAIN_TIMEOUT="1",
    )
    python = sys.executable
    if args.server == "pipe":
        served = [python, "-c", SERVER]
    else:
        floor = Path(__file__).with_name(f"_{args.server}_server.py")
        served = [python, str(floor), str(sock)]
    server = subprocess.Popen(
        [*_valgrind(root / "cg.%p", children=True), *served],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "server.log", "wb"),  # noqa: SIM115
    )
    url = f"unix://{sock}"
    try:
        deadline = time.monotonic() + 600
        while not sock.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "server.log").read_text())
            time.sleep(0.5)
        script = RAW_CLIENT if args.raw else CLIENT
        _run_clients(python, url, 3, 1, False, root, "warm", script)
        per: dict[str, list[int]] = {"client": [], "server": [], "worker": []}
        for n in args.counts:
            workers = _children(server.pid)
            for pid in [server.pid, *workers]:
                _dump(pid, root, f"before{n}")
            client = _run_clients(
                python, url, n, args.clients, args.sessions, root, str(n), script
            )
            workers = _children(server.pid)
            per["client"].append(client)
            per["server"].append(_dump(server.pid, root, f"after{n}"))
            per["worker"].append(sum(_dump(w, root, f"after{n}") for w in workers))
        n1, n2 = args.counts
        requests = (n2 - n1) * args.clients
        what = "own sessions" if args.sessions else "the default session"
        kind = "raw NDJSON" if args.raw else "SDK"
        print(
            f"{args.server}: {args.clients} {kind} client(s), {what}; "
            "instructions per request:"
        )
        for name, (a, b) in per.items():
            print(f"  {name:7} {(b - a) / requests / 1000:8.1f}k")
        if args.keep is not None:
            print(f"callgrind files: {root}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(sock.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
