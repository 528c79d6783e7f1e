"""File transfer throughput per transport, beside ``docker cp`` of the same file.

    uv run python bench/files.py [--mib N] [--rounds R]

Runs a controller (bench/controller.py's, same labels and clean-up), starts one backend
of each type (pipe, http, rpc) in an environment without requirements, and moves one
file of ``--mib`` MiB (default 100, random bytes) into each backend's workspace and back
``--rounds`` times (default 3) through the SDK (``client.files.write`` of a local path,
``client.files.download`` to a local path), checking its SHA-256 each time. The
BASELINE is ``docker cp`` of the same file into and out of the same container's
workspace, in the same rounds, interleaved. Reported: the median MiB/s of each
direction and its ratio to ``docker cp``'s (goal: at least 1x: no slower than
``docker cp``, both ways, on every transport).
"""

import argparse
import contextlib
import hashlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable

from bench import controller
from bench._harness import entry
from bench._options import bench_parser, known_args

from beephost_client.controller import Backend, BackendType, ControllerClient

GOAL = 1.0
MIB = 1 << 20
WORKSPACE = "/workspace"


@dataclass
class Speeds:
    """MiB/s of each round, per direction."""

    upload: list[float] = field(default_factory=list)
    download: list[float] = field(default_factory=list)


def make_file(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(mib):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    with path.open("rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def docker_cp(source: str, target: str) -> None:
    subprocess.run(["docker", "cp", source, target], check=True, capture_output=True)


def round_trip_sdk(
    client: ControllerClient, backend: Backend, local: Path, back: Path, mib: int
) -> tuple[float, float]:
    with client.connect_backend(backend.id) as remote:
        up = timed(lambda: remote.files.write("bench.bin", local))
        back.unlink(missing_ok=True)
        down = timed(lambda: remote.files.download("bench.bin", back))
        remote.files.remove("bench.bin")
    return mib / up, mib / down


def round_trip_docker_cp(
    container: str, local: Path, back: Path, mib: int
) -> tuple[float, float]:
    target = f"{container}:{WORKSPACE}/cp.bin"
    up = timed(lambda: docker_cp(str(local), target))
    back.unlink(missing_ok=True)
    down = timed(lambda: docker_cp(target, str(back)))
    return mib / up, mib / down


def measure(
    client: ControllerClient,
    environment: str,
    scratch: Path,
    mib: int,
    rounds: int,
    say: Callable[[str], None],
) -> dict[str, Speeds]:
    local, back = scratch / "source.bin", scratch / "back.bin"
    expected = make_file(local, mib)
    speeds: dict[str, Speeds] = {}
    backends: dict[BackendType, Backend] = {}
    try:
        for kind in controller.KINDS:
            backends[kind] = client.start_backend(environment, kind)
            controller.answer_backend(
                client, backends[kind], time.monotonic() + controller.START_TIMEOUT
            )
        for number in range(rounds):
            for kind, backend in backends.items():
                found = client.backend(backend.id)
                assert found.container_id is not None
                cp_up, cp_down = round_trip_docker_cp(
                    found.container_id, local, back, mib
                )
                assert sha256_of(back) == expected, "docker cp changed the file"
                speeds.setdefault(f"{kind}: docker cp", Speeds()).upload.append(cp_up)
                speeds[f"{kind}: docker cp"].download.append(cp_down)
                up, down = round_trip_sdk(client, backend, local, back, mib)
                assert sha256_of(back) == expected, f"{kind} changed the file"
                speeds.setdefault(kind, Speeds()).upload.append(up)
                speeds[kind].download.append(down)
            say(f"round {number + 1}/{rounds} done")
    finally:
        for backend in backends.values():
            with contextlib.suppress(Exception):
                client.stop_backend(backend.id)
    return speeds


def report(speeds: dict[str, Speeds], mib: int, rounds: int) -> None:
    print(f"\n{mib} MiB file, {rounds} rounds, median MiB/s (ratio to docker cp)")
    print(
        f"| transport | upload MiB/s | x docker cp | download MiB/s | x docker cp | goal >= {GOAL}x |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for kind in controller.KINDS:
        ours, floor = speeds[kind], speeds[f"{kind}: docker cp"]
        up, down = statistics.median(ours.upload), statistics.median(ours.download)
        cp_up, cp_down = (
            statistics.median(floor.upload),
            statistics.median(floor.download),
        )
        met = up / cp_up >= GOAL and down / cp_down >= GOAL
        print(
            f"| {kind} | {up:.0f} | {up / cp_up:.2f}x | {down:.0f} | "
            f"{down / cp_down:.2f}x | {'met' if met else 'NOT met'} |"
        )
        print(
            f"| docker cp ({kind}'s container) | {cp_up:.0f} | 1.00x | {cp_down:.0f} | 1.00x | |"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--mib", type=int, default=100, help="file size in MiB")
    parser.add_argument(
        "--rounds", type=int, default=3, help="round trips per transport"
    )
    return known_args(parser, argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return controller.bench_main(
        lambda _, client, scratch, say: measure(
            client, "bench", scratch, args.mib, args.rounds, say
        ),
        lambda speeds: report(speeds, args.mib, args.rounds),
    )


if __name__ == "__main__":
    entry(main)
