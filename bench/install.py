"""Install time of a small package into a running backend, the wheel cache warm.

    uv run python bench/install.py [--rounds R]

Runs a controller (bench/controller.py's, same labels and clean-up), builds an
environment without requirements, starts ``--rounds`` (default 5) http backends, and
installs ``tabulate==0.9.0`` into each through the SDK (``install``, then ``wait_job``:
what a user waits for), after one unmeasured install that fills the wheel pool. Then
the first ``import tabulate`` in a session opened before the install. BASELINE, in
the same run: ``uv pip install --target`` of the same wheel on the host, cache warm
(the unpack alone, without resolution, copy or activation). Goal: under 3 s.
"""

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable

from bench import controller
from bench._harness import entry
from bench._options import bench_parser, known_args
from uv import find_uv_bin

from beephost_client.controller import ControllerClient

PACKAGE = "tabulate==0.9.0"
GOAL_S = 3.0


@dataclass
class InstallTimes:
    """Seconds of each measured install, first import and baseline."""

    installs: list[float] = field(default_factory=list)
    imports: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)


def uv_target_install(scratch: Path) -> float:
    """``uv pip install --target`` of the package on the host (the floor)."""
    target = Path(tempfile.mkdtemp(dir=scratch))
    command = [
        find_uv_bin(), "pip", "install", "--quiet", "--no-config", "--target",
        str(target), "--python-version", "3.11", "--python-platform",
        "x86_64-manylinux_2_28", PACKAGE,
    ]  # fmt: skip
    began = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - began


def one_install(
    client: ControllerClient, environment: str, times: InstallTimes | None
) -> None:
    backend = client.start_backend(environment, "http")
    try:
        client.wait_backend(backend.id, timeout=controller.START_TIMEOUT)
        with client.connect_backend(backend.id) as remote, remote.session() as session:
            began = time.perf_counter()
            job = client.wait_job(client.install(backend.id, [PACKAGE]).id, timeout=300)
            installed = time.perf_counter()
            assert job.succeeded, job.error
            assert session.evaluate("__import__('tabulate').__version__") == "0.9.0"
            imported = time.perf_counter()
        if times is not None:
            times.installs.append(installed - began)
            times.imports.append(imported - installed)
    finally:
        client.stop_backend(backend.id)


def measure(
    client: ControllerClient,
    environment: str,
    scratch: Path,
    rounds: int,
    say: Callable[[str], None],
) -> InstallTimes:
    """One unmeasured install (it fills the wheel pool), then ``rounds`` measured ones
    interleaved with the baseline."""
    times = InstallTimes()
    say(f"install: warming the wheel pool with {PACKAGE}")
    one_install(client, environment, None)
    uv_target_install(scratch)  # uv's own cache, warm too
    for number in range(rounds):
        one_install(client, environment, times)
        times.baseline.append(uv_target_install(scratch))
        say(f"install: round {number + 1}/{rounds} done")
    return times


def report(times: InstallTimes) -> None:
    install = statistics.median(times.installs)
    floor = statistics.median(times.baseline)
    print(
        f"\ninstall {PACKAGE} into a running http backend, median of {len(times.installs)}"
    )
    print("| case | seconds | x uv --target | goal |")
    print("|---|---:|---:|---|")
    met = "met" if install < GOAL_S else "NOT met"
    print(
        f"| install (submit to job succeeded) | {install:.2f} | {install / floor:.1f}x | < {GOAL_S:g} s: {met} |"
    )
    print(
        f"| first import after it, open session | {statistics.median(times.imports):.3f} | | |"
    )
    print(f"| uv pip install --target (baseline) | {floor:.2f} | 1.0x | |")


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="measured installs")
    args = known_args(parser, argv)
    return controller.bench_main(
        lambda _, client, scratch, say: measure(
            client, "bench", scratch, args.rounds, say
        ),
        report,
    )


if __name__ == "__main__":
    entry(main)
