"""The time to return a matplotlib PNG per transport, through the SDK, beside Jupyter.

    uv run python bench/plots.py [--seconds S] [--block N] [--pin] [--seed N]

Every request runs, in a session where matplotlib is already imported (warm, before
timing, so the case measures rendering and transport, the same for all):

    fig, ax = plt.subplots(); ax.plot(range(10)); plt.show()

a 640x480 PNG (matplotlib's default figsize 6.4x4.8 at dpi 100), checked from its header
on every request. Starts, at once and as separate processes, a pipe, an HTTP and a gRPC
backend whose workers run under the plotting interpreter, a Jupyter kernel (ipykernel
with ``%matplotlib inline``) under the same interpreter, and the FLOOR: the raw
Unix-socket eval server (bench/_floor_server.py) under that interpreter too, rendering
the same figure in-process with ``savefig`` and returning it base64 in one NDJSON line
(the render's cost plus the least transport). Our cases time
``client.execute(code).images[0].png`` through the sync SDK (``beephost_client.connect``);
the kernel's times ``kc.execute(code)`` until the display_data with the PNG arrives,
decoded as the SDK decodes it (the execute_reply and ``idle`` are then awaited
untimed). The inline backend's default ``bbox_inches="tight"`` is turned off: it crops
the image and draws the figure twice, so Jupyter does the same work as our worker.

The plotting interpreter is a virtualenv of REQUIREMENTS on the workers' default base
interpreter, made with uv from PyPI on first use and kept under
``~/.cache/beephost/bench-env/`` (the key covers the interpreter and the pins).
bench/all.py runs these cases in its round-trip section, interleaved with the others.
Goal (the issue's): every transport at least 2x faster than the Jupyter kernel.
"""

import base64
import fcntl
import functools
import hashlib
import os
import platform
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from bench import _harness, _jupyter, http_roundtrip, pipe_roundtrip
from bench._harness import BENCH_DIR, ProcessServer, Spec
from bench._timing import timed

import beephost_client
from beephost_core.config import base_interpreter

REQUIREMENTS = ("matplotlib==3.11.2", "ipykernel==7.4.0")
WARM = "import matplotlib.pyplot as plt"
PLOT = "fig, ax = plt.subplots()\nax.plot(range(10))\nplt.show()"
SIZE = (640, 480)
GOAL = 2.0  # x faster than Jupyter
BLOCK_SCALE = 0.015  # tens of ms a plot: 3 per block of 200
BUDGET_SCALE = 3.0  # measured time per case x3: --quick's 0.5 s would be ~10 plots
TIMEOUT_S = 60.0
KINDS = ("pipe", "http", "grpc")
FLOOR, JUPYTER = "png-floor", "png-jupyter"
NAMES = (FLOOR, *(f"png-{kind}" for kind in KINDS), JUPYTER)
# Sent once to the floor server (its eval runs exec() in its namespace): plot() renders
# what PLOT does, as the worker's inline backend saves it (the figure's size and dpi).
FLOOR_SETUP = """
import base64, io
import matplotlib
matplotlib.use("agg")
import matplotlib.pyplot as plt

def plot():
    fig, ax = plt.subplots()
    ax.plot(range(10))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()
"""
Say = Callable[[str], None]


def png_size(png: bytes | None) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; ValueError if it is no PNG."""
    if png is None or png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError(f"not a PNG: {(png or b'')[:16]!r}")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def check(png: bytes | None, case: str) -> None:
    size = png_size(png)
    if size != SIZE:
        raise RuntimeError(f"{case}: a {size[0]}x{size[1]} PNG, not {SIZE}")


# --------------------------------------------------------------------------------------
# the plotting interpreter


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def environment(say: Say) -> str:
    """The plotting interpreter: a venv of REQUIREMENTS, made once with uv and kept.

    Built in place under a lock (concurrent bench runs wait for one build); its marker
    is written last, so an interrupted build is started over.
    """
    base = base_interpreter()
    key = hashlib.sha256(
        "\n".join([base, platform.python_version(), *REQUIREMENTS]).encode()
    ).hexdigest()[:16]
    root = cache_root() / "beephost" / "bench-env" / key
    python, marker = root / "bin" / "python", root / ".complete"
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return str(python)
        uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` sets UV
        if uv is None:
            raise RuntimeError("the plot cases need uv: run the bench with `uv run`")
        say(f"plots: creating {root} ({', '.join(REQUIREMENTS)}) with uv")
        shutil.rmtree(root, ignore_errors=True)
        steps = [
            [uv, "venv", "--quiet", "--python", base, str(root)],
            [uv, "pip", "install", "--quiet", "--python", str(python), *REQUIREMENTS],
            [str(python), "-c", "import matplotlib, ipykernel"],
        ]
        for argv in steps:
            subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
        marker.write_text("\n".join(REQUIREMENTS) + "\n")
    return str(python)


# --------------------------------------------------------------------------------------
# clients


class FloorPlot:
    """The floor server's ``plot()``: one NDJSON line each way, PNG decoded, checked."""

    def __init__(self, path: str) -> None:
        self.client = pipe_roundtrip.LineClient(path)
        try:  # untimed: matplotlib imported, plot() defined
            self.eval(f"exec({FLOOR_SETUP!r})")
        except BaseException:
            self.client.close()
            raise

    def eval(self, expression: str) -> Any:
        params = {"expression": expression}
        return self.client.call({"type": "eval", "params": params})["value"]

    def block(self, count: int) -> list[int]:
        return timed(
            count,
            lambda: base64.b64decode(self.eval("plot()")),
            lambda png: check(png, FLOOR),
        )

    def close(self) -> None:
        self.client.close()


class SdkPlot:
    """The sync SDK on one backend's default session: execute, PNG decoded, checked."""

    def __init__(self, url: str, case: str) -> None:
        self.case = case
        self.client = beephost_client.connect(url, timeout=TIMEOUT_S)
        try:
            self.client.execute(WARM)  # matplotlib imported in the worker, untimed
        except BaseException:
            self.client.close()
            raise

    def block(self, count: int) -> list[int]:
        return timed(
            count,
            lambda: self.client.execute(PLOT).images[0].png,
            lambda png: check(png, self.case),
        )

    def close(self) -> None:
        self.client.close()


class KernelPlot:
    """A notebook's execute with matplotlib inline: timed until the PNG's display_data
    arrives (decoded, as the SDK does); then the reply and ``idle``, untimed."""

    def __init__(self, server: _jupyter.KernelServer) -> None:
        assert server.client is not None
        self.kc = server.client
        # Untimed: the inline backend, the same PNG as our worker's, matplotlib warm.
        self.run(
            "%matplotlib inline\n"
            "%config InlineBackend.print_figure_kwargs = {'bbox_inches': None}\n" + WARM
        )

    def run(self, code: str) -> None:
        """Execute ``code`` and wait for its reply and ``idle``."""
        self.finish(self.kc.execute(code))

    def first_png(self, msg_id: str) -> bytes:
        """The PNG of the first display_data of the request ``msg_id``."""
        while True:
            message = self.kc.get_iopub_msg(timeout=TIMEOUT_S)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "display_data" and "image/png" in content["data"]:
                return base64.b64decode(content["data"]["image/png"])
            if kind == "error":
                raise RuntimeError(
                    f"{JUPYTER}: {content['ename']}: {content['evalue']}"
                )
            if kind == "status" and content["execution_state"] == "idle":
                raise RuntimeError(f"{JUPYTER}: idle without a PNG")

    def finish(self, msg_id: str) -> None:
        """Wait for the execute_reply (ok), then the ``idle`` status on iopub."""
        while True:
            reply = self.kc.get_shell_msg(timeout=TIMEOUT_S)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"{JUPYTER}: reply {reply['content']!r}")
        while True:
            message = self.kc.get_iopub_msg(timeout=TIMEOUT_S)
            if (
                message["parent_header"].get("msg_id") == msg_id
                and message["msg_type"] == "status"
                and message["content"]["execution_state"] == "idle"
            ):
                return

    def block(self, count: int) -> list[int]:
        return timed(count, self.plot, self.settle)

    def plot(self) -> tuple[str, bytes]:
        """Timed: the execute request until its PNG arrived."""
        msg_id = self.kc.execute(PLOT)
        return msg_id, self.first_png(msg_id)

    def settle(self, plotted: tuple[str, bytes]) -> None:
        """Untimed: the request's reply and ``idle``, then the PNG's check."""
        msg_id, png = plotted
        self.finish(msg_id)
        check(png, JUPYTER)

    def close(self) -> None:
        pass  # the channels belong to the KernelServer


# --------------------------------------------------------------------------------------
# servers


def backend_spec(kind: str, tmp: Path, python: str) -> Spec:
    """A backend of ``kind`` whose workers run under ``python``, with bench/transports.py's
    settings (no metrics port, no prewarmed worker)."""
    name = f"png-{kind}"
    address: Path | int
    if kind == "pipe":
        address = tmp / f"{name}.sock"
        url = f"unix://{address}"
    else:
        address = http_roundtrip.free_port()
        url = f"{kind}://127.0.0.1:{address}"
    server = _harness.backend_server(kind, name, tmp, address, python)
    return Spec(
        name,
        server,
        functools.partial(sdk_probe, url),
        functools.partial(SdkPlot, url, name),
        f"beephost {kind} backend through the sync SDK: "
        "client.execute(code).images[0].png",
        block_scale=BLOCK_SCALE,
        budget_scale=BUDGET_SCALE,
    )


def sdk_probe(url: str) -> bool:
    """Ready once ``1+1`` answers (the default session's worker then exists)."""
    try:
        with beephost_client.connect(url, timeout=2) as client:
            return bool(client.evaluate("1+1") == 2)
    except beephost_client.BeepHostError:
        return False


def jupyter_spec(tmp: Path, python: str) -> Spec:
    server = _jupyter.KernelServer(JUPYTER, tmp, python=python)
    return Spec(
        JUPYTER,
        server,
        server.probe,
        lambda: KernelPlot(server),
        "ipykernel, %matplotlib inline (bbox_inches None): execute -> the PNG's "
        "display_data",
        block_scale=BLOCK_SCALE,
        budget_scale=BUDGET_SCALE,
    )


def floor_spec(tmp: Path, python: str) -> Spec:
    path = tmp / f"{FLOOR}.sock"
    server = ProcessServer(
        FLOOR,
        [python, str(BENCH_DIR / "_floor_server.py"), str(path)],
        path,
        tmp / f"{FLOOR}.log",
    )
    return Spec(
        FLOOR,
        server,
        _harness.socket_probe(server),
        functools.partial(FloorPlot, str(path)),
        "raw UDS NDJSON floor server, the same figure rendered in-process (savefig), "
        "base64 in one line",
        block_scale=BLOCK_SCALE,
        budget_scale=BUDGET_SCALE,
    )


def build(tmp: Path, python: str) -> list[Spec]:
    return [
        floor_spec(tmp, python),
        *(backend_spec(kind, tmp, python) for kind in KINDS),
        jupyter_spec(tmp, python),  # last: its probe blocks up to ~1 s
    ]


# --------------------------------------------------------------------------------------
# on its own


def main(argv: list[str] | None = None) -> int:
    args = _harness.parse_args(argv, __doc__, seconds=3.0)
    python = environment(lambda text: print(text, file=sys.stderr))
    run = _harness.run(args, lambda tmp: build(tmp, python), "bhb-plots-")
    by_name = {r.name: r for r in run.results}
    floor, jupyter = by_name[FLOOR].p(0.5), by_name[JUPYTER].p(0.5)
    headers = [
        "case",
        "requests",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p50 ÷ floor",
        "x faster than Jupyter",
        "CPU ms/req: client",
        "server",
        "worker",
    ]
    rows = []
    for r in run.results:
        client, server, worker = r.cpu_us()
        rows.append(
            [
                r.name,
                str(len(r.latencies)),
                *(f"{r.p(q) / 1000:.2f}" for q in (0.5, 0.9, 0.99)),
                f"{r.p(0.5) / floor:.2f}x",
                f"{jupyter / r.p(0.5):.2f}x",
                *(f"{us / 1000:.2f}" for us in (client, server, worker)),
            ]
        )
    print(
        f"plots: {PLOT!r}, {SIZE[0]}x{SIZE[1]} PNG, Python {platform.python_version()}, "
        f"{run.rounds} shuffled rounds, {args.seconds:g}s per case, seed {run.seed}, "
        f"{'pinned' if args.pin else 'not pinned'}; plotting interpreter {python}"
    )
    print(f"code under test: {_harness.code_under_test()}\n")
    print(_harness.render_text(headers, rows))
    for r in run.results:
        print(f"  {r.name}  {r.spec.note}")
    print()
    print(_harness.render_markdown(headers, rows))
    ours = [r for r in run.results if r.name not in (FLOOR, JUPYTER)]
    slowest = min(jupyter / r.p(0.5) for r in ours)
    print(
        f"\nVERDICT: goal 'every transport at least {GOAL:g}x faster than Jupyter' "
        f"{'MET' if slowest >= GOAL else 'NOT MET'}: slowest {slowest:.2f}x"
    )
    return 0


if __name__ == "__main__":
    _harness.entry(main)
