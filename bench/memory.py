"""Idle memory per backend container, counted as ``docker stats`` counts it.

    uv run python bench/memory.py [--idle S] [--samples N]

Runs a controller (bench/controller.py's, same labels and clean-up), starts one backend
of each type (pipe, http, rpc) in an environment without requirements, has each answer
``1+1`` (so its default session's worker exists), then leaves them idle ``--idle``
seconds (default 10) beside a FLOOR container: the base image running
``python3 -c "import time; time.sleep(600)"`` with the backends' hardening (non-root,
every capability dropped, no-new-privileges, read-only root with a 64 MiB /tmp, no
network, 256 pids, 512 MiB, 1 CPU). Each container's memory is what ``docker stats``
shows: the cgroup's usage minus its inactive file cache (``inactive_file`` on cgroup
v2, ``total_inactive_file`` on v1), read through the Docker SDK's one-shot stats, the
least of ``--samples`` reads 0.5 s apart: the controller's health check execs a
short-lived Python process in each backend every 5 s.
Where it goes: the cgroup's anonymous memory and active file cache, and the container's
processes (``container.top``, the host's ps) split into the server (the container's
first process), its workers (the server's descendants) and anything else (a health
check caught running), with RSS, PSS, private and anonymous (PSS) memory from
/proc/PID/smaps_rollup
(readable when the bench runs as root or as the containers' user; else RSS only).
Goal (the issue's): under 60 MiB per backend container.
"""

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable

import docker
from bench import controller
from bench._harness import entry, render_text
from bench._options import bench_parser, known_args
from docker.models.containers import Container as DockerContainer

from beephost_client.controller import Backend, BackendType, ControllerClient

GOAL_MIB = 60.0
MIB = 1 << 20
SAMPLE_INTERVAL = 0.5
FLOOR_COMMAND = ["python3", "-c", "import time; time.sleep(600)"]
# The backends' hardening (beephost_controller.specs.ContainerSpec's
# defaults), minus what only a server needs (its socket mount, ports, health check).
FLOOR_HARDENING = {
    "user": "10001:10001",
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "read_only": True,
    "tmpfs": {"/tmp": "rw,nosuid,nodev,size=64m"},
    "pids_limit": 256,
    "mem_limit": "512m",
    "memswap_limit": "512m",
    "nano_cpus": 1_000_000_000,
    "network_mode": "none",
}


@dataclass
class Usage:
    """One container's memory, bytes, as ``docker stats`` counts it."""

    used: int  # usage - inactive file
    anon: int
    active_file: int
    cgroup: str  # "v1" or "v2"


@dataclass
class Proc:
    pid: int
    ppid: int
    args: str
    rss: int  # bytes
    pss: int | None = None  # from smaps_rollup, when readable
    private: int | None = None  # its own pages: what its exit would free
    anon: int | None = None  # PSS of heap and stacks, not of mapped files


@dataclass
class Split:
    server: list[Proc] = field(default_factory=list)
    workers: list[Proc] = field(default_factory=list)
    other: list[Proc] = field(default_factory=list)  # e.g. a health check exec


@dataclass
class Reading:
    name: str
    usage: Usage
    split: Split
    samples: list[int]  # every read of ``used``


@dataclass
class Idle:
    idle_s: float
    floor: Reading
    backends: dict[str, Reading]


# --------------------------------------------------------------------------------------
# reading a container


def usage(stats: dict[str, object]) -> Usage:
    """``docker stats``' memory figure (the CLI's calculateMemUsageUnixNoCache)."""
    memory = stats["memory_stats"]
    assert isinstance(memory, dict)
    total: int = memory["usage"]
    raw: dict[str, int] = memory.get("stats", {})
    if "total_inactive_file" in raw:  # cgroup v1
        inactive, cgroup = raw["total_inactive_file"], "v1"
        anon, active = raw.get("total_rss", 0), raw.get("total_active_file", 0)
    else:
        inactive, cgroup = raw.get("inactive_file", 0), "v2"
        anon, active = raw.get("anon", 0), raw.get("active_file", 0)
    used = total - inactive if inactive < total else total
    return Usage(used, anon, active, cgroup)


def least_usage(container: DockerContainer, samples: int) -> tuple[Usage, list[int]]:
    """The smallest of ``samples`` one-shot reads, and every read."""
    reads = []
    for i in range(samples):
        if i:
            time.sleep(SAMPLE_INTERVAL)
        reads.append(usage(container.stats(stream=False, one_shot=True)))
    return min(reads, key=lambda u: u.used), [u.used for u in reads]


def smaps(pid: int) -> tuple[int, int, int] | None:
    """PSS, private and anonymous PSS bytes of a host PID (None: /proc will not say)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    kb = {}
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        with contextlib.suppress(ValueError, IndexError):
            kb[key] = int(rest.split()[0])
    private = kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)
    return kb.get("Pss", 0) * 1024, private * 1024, kb.get("Pss_Anon", 0) * 1024


def processes(container: DockerContainer) -> list[Proc]:
    """The container's processes by the host's ps (``container.top``), host PIDs."""
    top = container.top(ps_args="-o pid,ppid,rss,args")
    found = []
    for pid, ppid, rss, *args in top["Processes"]:
        proc = Proc(int(pid), int(ppid), " ".join(args), int(rss) * 1024)
        memory = smaps(proc.pid)
        if memory is not None:
            proc.pss, proc.private, proc.anon = memory
        found.append(proc)
    return found


def split(procs: list[Proc], first_pid: int) -> Split:
    """The server (the container's first process), its descendants, everything else."""
    parts = Split()
    family = {first_pid}
    for proc in sorted(procs, key=lambda p: p.pid):  # a parent before its children
        if proc.pid == first_pid:
            parts.server.append(proc)
        elif proc.ppid in family:
            family.add(proc.pid)
            parts.workers.append(proc)
        else:
            parts.other.append(proc)
    return parts


def read_container(name: str, container: DockerContainer, samples: int) -> Reading:
    least, reads = least_usage(container, samples)
    container.reload()
    first_pid = int(container.attrs["State"]["Pid"])
    return Reading(name, least, split(processes(container), first_pid), reads)


# --------------------------------------------------------------------------------------
# the containers measured


def start_floor(engine: docker.DockerClient, image: str, run: str) -> DockerContainer:
    return engine.containers.run(
        image,
        FLOOR_COMMAND,
        detach=True,
        labels={controller.RUN_LABEL: run},
        **FLOOR_HARDENING,
    )


def start_answered(
    client: ControllerClient, environment: str, kind: BackendType
) -> Backend:
    """A backend that has answered ``1+1``: its default session's worker is up."""
    backend = client.start_backend(environment, kind)
    controller.answer_backend(
        client, backend, time.monotonic() + controller.START_TIMEOUT
    )
    return backend


def measure(
    client: ControllerClient,
    ctl: controller.Controller,
    environment: str,
    image: str,
    idle_s: float,
    samples: int,
    say: Callable[[str], None],
) -> Idle:
    """Start the floor and one backend per type, let them idle, read each."""
    engine = docker.from_env()
    floor = None
    backends: dict[str, Backend] = {}
    try:
        floor = start_floor(engine, image, ctl.run)
        for kind in controller.KINDS:
            backends[kind] = start_answered(client, environment, kind)
        say(f"idle memory: 3 backends and the floor up; idling {idle_s:g} s")
        time.sleep(idle_s)
        read = {"floor": read_container("floor", floor, samples)}
        for name, backend in backends.items():
            found = client.backend(backend.id)
            assert found.container_id is not None
            container = engine.containers.get(found.container_id)
            read[name] = read_container(name, container, samples)
        return Idle(idle_s, read.pop("floor"), read)
    finally:
        for backend in backends.values():
            with contextlib.suppress(Exception):
                client.stop_backend(backend.id)
        if floor is not None:
            with contextlib.suppress(Exception):
                floor.remove(force=True, v=True)
        engine.close()


# --------------------------------------------------------------------------------------
# report


def mib(value: float | None) -> str:
    return "-" if value is None else f"{value / MIB:.1f}"


def total(procs: Iterable[Proc], attribute: str) -> int | None:
    values = [getattr(proc, attribute) for proc in procs]
    return None if not values or None in values else sum(values)


def memory_cells(procs: list[Proc]) -> str:
    """``RSS / PSS / private / anon`` MiB, summed over ``procs``."""
    return " / ".join(
        mib(total(procs, attribute)) for attribute in ("rss", "pss", "private", "anon")
    )


def describe(procs: list[Proc]) -> str:
    return "; ".join(f"{p.pid}: {p.args[:90]}" for p in procs)


def report(idle: Idle) -> None:
    floor = idle.floor.usage.used
    headers = [
        "container / process",
        "MiB",
        "÷ floor",
        "goal",
        "RSS / PSS / private / anon MiB",
    ]
    rows = [
        [
            "floor: python3 sleep, hardened",
            mib(floor),
            "-",
            "-",
            memory_cells(idle.floor.split.server),
        ]
    ]
    for kind, found in idle.backends.items():
        used = found.usage.used
        met = "met" if used < GOAL_MIB * MIB else "NOT met"
        rows.append(
            [
                f"{kind} backend container",
                mib(used),
                f"{used / floor:.2f}x",
                f"< {GOAL_MIB:g}: {met}",
                "-",
            ]
        )
        rows.append(
            [
                "  cgroup anon / active file",
                f"{mib(found.usage.anon)} / {mib(found.usage.active_file)}",
                "-",
                "-",
                "-",
            ]
        )
        for part in ("server", "workers", "other"):
            procs: list[Proc] = getattr(found.split, part)
            if procs:
                rows.append(
                    [f"  {part} x{len(procs)}", "-", "-", "-", memory_cells(procs)]
                )
    print(
        f"idle memory after {idle.idle_s:g} s idle (cgroup {idle.floor.usage.cgroup}), "
        "least of the reads:"
    )
    print(render_text(headers, rows))
    for kind, found in idle.backends.items():
        procs = found.split.server + found.split.workers + found.split.other
        print(f"  {kind}: {describe(procs)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--idle", type=float, default=10.0, help="idle seconds")
    parser.add_argument("--samples", type=int, default=5, help="reads per container")
    return known_args(parser, argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return controller.bench_main(
        lambda ctl, client, _, say: measure(
            client,
            ctl,
            "bench",
            controller.base_image(client),
            args.idle,
            args.samples,
            say,
        ),
        report,
    )


if __name__ == "__main__":
    entry(main)
