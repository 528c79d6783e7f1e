"""Controller: backend start-to-ready and environment create times, on the real engine.

    uv run python bench/controller.py [--starts N] [--warmup N] [--recreates N]
                                      [--skip-build] [--seed N]

Runs a real controller process (``python -m beephost_controller``) on the local Docker
engine with a database, socket root and name of its own, building from a snapshot of the
workspace (edits made meanwhile cannot change the images mid-run) into repositories of
its own, ``beephost-bench-<run>/{pipe,http,rpc}-backend`` and ``.../env``: extra labels
are part of a backend image's build key, so labelled images cannot reuse (and must not
retag) the shared ``beephost/*-backend`` ones. Everything it builds carries
``io.beephost.bench.run=<run>``; the base image ``beephost/python:X.Y`` is shared and
reused. Then, through the SDK's ``ControllerClient``:

1. START-TO-READY per backend type (pipe, http, rpc) in an environment without
   requirements: ``start_backend(env, type)``, then ``1+1`` retried every 20 ms through
   a client of the backend's connection (``backend_connection``, what
   ``connect_backend`` connects to) until it is answered: the user-visible number.
   Beside it, when the controller marked the backend ``ready`` (its ``ready_at``; a
   long poll ``GET /api/v1/backends/{id}?wait=5`` runs meanwhile, as a waiting client
   would). The answer time splits into create (request sent to the container created,
   its relay's included for http/rpc), start (to Docker's ``StartedAt``) and boot (to
   the answer: interpreter, server import, listen, session worker). N starts per type
   (``--starts``) after one unmeasured warm-up each (``--warmup``), in a shuffled order
   interleaved with the baselines, each stopped after. BASELINES, same run, same order:
   the CONTAINER FLOOR ``docker run --rm --network none <base image> python3 -c pass``
   (wall time of the CLI), the RELAYED FLOOR (the two containers an http or rpc start
   makes, run at once: that one, and one on the controller's offline network
   publishing a port, as its relay does; to the later CLI's end), each type's STACK
   FLOOR (``stack_floor``: from ``docker run`` of the environment's image to its
   interpreter having imported only what that server must import before it can
   answer, ``STACKS``; exit and removal not counted),
   and a bare JUPYTER kernel (ipykernel through jupyter_client, bench/_jupyter.py) from
   spawn to its first execute reply. Literature, not measured: llm-sandbox, 3-5 s per
   cold container. Goals: p50 < 1 s for every type; p50 <= 1.5x the container floor
   (issue 33), reported beside the stack floor's ratio, which no server on that stack
   can beat.
2. RE-CREATE an existing environment: env A (``six==1.17.0``) is built; then
   ``--recreates`` times (5) a new environment with the same requirements is created
   and timed until its job succeeded (the ready equal environment's lock, the image
   found by its content address: no resolution, no build), and deleted; and as often
   ``ensure_environment`` of A itself (``PUT``). Goal < 0.5 s.
3. A NEW ENVIRONMENT with fastapi-sized requirements, ``fastapi`` and
   ``uvicorn[standard]`` unpinned: create to job succeeded, i.e. resolution with uv
   against PyPI, wheels into the host's pool (``~/.cache/beephost/backend-images/
   wheels``, kept between runs: only a run that meets new wheels downloads, and the
   report says how warm the pool was), the offline image build. Phases from the job's
   log lines as they stream. One run; ``--skip-build`` skips it. Goal < 15 s.

Cleanup, always: backends stopped and environments deleted through the API, the process
stopped, then every container and network labelled ``io.beephost.controller=<name>``
and every image labelled with the run removed with the docker CLI, nothing else.
Absolute numbers on a shared 2-vCPU machine move between runs; ratios to the container
floor measured in the same run move less (shared/research/platform.md).
"""

import argparse
import concurrent.futures
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.* importable

from bench import _jupyter
from bench._harness import code_under_test, entry, render_text
from bench._options import bench_parser, known_args
from bench.http_roundtrip import free_port
from scripts.local_controller import LocalController
from scripts.workspace_snapshot import snapshot_workspace

import beephost_client
from beephost_client.controller import Backend, BackendType, ControllerClient, LogLine
from beephost_controller.engine.code_volumes import (
    CODE_PATHS,
    COMPLETE,
    LABEL_CODE_IMAGE,
    LABEL_CODE_PART,
    PRIVATE_CACHE_DRIVERS,
)
from beephost_controller.images.layout import SERVER_VENVS, default_cache_dir
from beephost_protocol.errors import BeepHostError

PYTHON = "3.11"
KINDS: tuple[BackendType, ...] = ("pipe", "http", "rpc")
SIX = ["six==1.17.0"]
FASTAPI = ["fastapi", "uvicorn[standard]"]
RECREATES = 5
START_GOAL, RECREATE_GOAL, BUILD_GOAL = 1.0, 0.5, 15.0
COLD_START_GOAL = 1.5  # x the container floor (issue 33)
LITERATURE = "llm-sandbox: 3-5 s per cold container (literature, not measured)"
CONTROLLER_LABEL = "io.beephost.controller"
RUN_LABEL = "io.beephost.bench.run"
POLL = 0.02  # seconds between two 1+1 attempts
START_TIMEOUT = 60.0
#: Seconds a start's relay made ahead may take (the backend's boot, then the relay's).
RELAY_WAIT = 10.0
BUILD_TIMEOUT = 900.0
ATTEMPT = beephost_client.Timeout(request=5.0, connect=0.5, grace=1.0)
#: What each server must import before it can answer, by the design, at the least: its
#: event loop (asyncio, uvloop), its transport's server library (none for pipe,
#: httptools under uvicorn for http, grpc.aio for rpc) and pydantic's BaseModel (every
#: setting is validated by a model before anything starts; ``import pydantic`` alone
#: defers it). FastAPI itself comes after the first answer
#: (``beephost_http_backend.front``), prometheus_client could too: both left out.
STACKS: Mapping[BackendType, tuple[str, ...]] = {
    "pipe": ("asyncio", "uvloop", "pydantic.main"),
    "http": ("asyncio", "uvloop", "httptools", "pydantic.main"),
    "rpc": ("asyncio", "uvloop", "grpc.aio", "pydantic.main"),
}

# --------------------------------------------------------------------------------------
# docker CLI and the controller process


def docker(*args: str, check: bool = True, timeout: float = 300.0) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def docker_time(value: str) -> float:
    """Unix seconds of a Docker timestamp (RFC 3339, nanoseconds, ``Z``)."""
    value = re.sub(r"(\.\d{6})\d*", r"\1", value.strip()).replace("Z", "+00:00")
    return datetime.fromisoformat(value).timestamp()


@dataclass(kw_only=True)
class Controller(LocalController):
    """The run's controller: it builds ``workspace`` (a snapshot) into repositories of
    the run, labels all it makes with the run, and notes the environments it created."""

    workspace: Path
    run: str = field(default_factory=lambda: secrets.token_hex(4))
    environments: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"bench-{self.run}"

    @property
    def repository(self) -> str:
        return f"beephost-bench-{self.run}"

    def defaults(self) -> dict[str, str]:
        return {
            **super().defaults(),
            "NAME": self.name,
            "PYTHONS": json.dumps([PYTHON]),
            "DEFAULT_PYTHON": PYTHON,
            "LABELS": json.dumps({RUN_LABEL: self.run}),
            "SUPERVISE_INTERVAL": "0.5",
            "WORKSPACE": str(self.workspace),
            "BACKEND_IMAGE_PREFIX": self.repository,
            "ENVIRONMENT_REPOSITORY": f"{self.repository}/env",
        }

    def clean_api(self, client: ControllerClient) -> None:
        """Stop every backend and delete the environments this run created."""
        with contextlib.suppress(BeepHostError, OSError):
            for backend in client.backends():
                with contextlib.suppress(BeepHostError, OSError):
                    client.stop_backend(backend.id)
        for name in self.environments:
            with contextlib.suppress(BeepHostError, OSError):
                client.delete_environment(name)

    def remove_owned(self) -> list[str]:
        """Remove the containers, networks, volumes and images carrying this run's
        labels."""
        removed: list[str] = []
        for label in (f"{CONTROLLER_LABEL}={self.name}", f"{RUN_LABEL}={self.run}"):
            for container in docker("ps", "-aq", "--filter", f"label={label}").split():
                docker("rm", "-f", "-v", container, check=False)
                removed.append(f"container {container}")
        label = f"{CONTROLLER_LABEL}={self.name}"
        for network in docker(
            "network", "ls", "-q", "--filter", f"label={label}"
        ).split():
            docker("network", "rm", network, check=False)
            removed.append(f"network {network}")
        for volume in docker(
            "volume", "ls", "-q", "--filter", f"label={label}"
        ).split():
            docker("volume", "rm", "-f", volume, check=False)
            removed.append(f"volume {volume}")
        # Children first: environment images are built FROM the pipe backend image.
        for _ in range(5):
            images = docker(
                "images",
                "-aq",
                "--no-trunc",
                "--filter",
                f"label={RUN_LABEL}={self.run}",
            ).split()
            if not images:
                break
            for image in dict.fromkeys(images):
                if docker("image", "rm", "-f", image, check=False):
                    removed.append(f"image {image[7:19]}")
        return removed


def quoted_tail(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines()[-30:])


# --------------------------------------------------------------------------------------
# 1. backend starts and their baselines


@dataclass
class Start:
    """One backend start, in seconds from the request being sent."""

    post: float  # the POST's reply
    answered: float  # 1+1 answered
    ready: float  # the controller's ready_at
    create: float  # to the container created (the controller's created_at)
    started: float  # to Docker's StartedAt
    stop: float  # the DELETE's reply (not part of the start)
    attempts: int  # 1+1 attempts until the answer
    raced: bool  # the long poll missed the change (it started after it)


def wait_ready(client: ControllerClient, backend_id: str, deadline: float) -> bool:
    """Long-poll until the backend is ready; whether a long poll began after the change
    (it then waits for the NEXT change: the whole ``wait``)."""
    path = f"/api/v1/backends/{backend_id}"
    raw = client._json("GET", path)
    raced = False
    while raw["status"] != "ready":
        if raw["status"] in ("exited", "stopped") or time.monotonic() > deadline:
            raise RuntimeError(f"backend {backend_id} is {raw['status']}: {raw}")
        asked = time.monotonic()
        raw = client._json("GET", path, query={"wait": 5})
        raced = raced or time.monotonic() - asked > 4.9
    return raced


def answer(url: str, token: str | None, deadline: float) -> int:
    """Retry ``1+1`` until answered; the number of attempts."""
    attempts = 0
    while True:
        attempts += 1
        try:
            with beephost_client.connect(url, token=token, timeout=ATTEMPT) as backend:
                if backend.evaluate("1+1") == 2:
                    return attempts
        except (BeepHostError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 1+1 in {START_TIMEOUT:g} s")
        time.sleep(POLL)


def answer_backend(client: ControllerClient, backend: Backend, deadline: float) -> int:
    """Wait for the backend's connection, then retry ``1+1`` until answered; attempts."""
    while True:  # the published port is known once the container started
        try:
            connection = client.backend_connection(backend.id)
            break
        except BeepHostError:
            if time.monotonic() > deadline:
                raise
            time.sleep(POLL)
    return answer(connection.url, backend.token or connection.token, deadline)


def start_backend(
    client: ControllerClient,
    pool: concurrent.futures.ThreadPoolExecutor,
    environment: str,
    kind: BackendType,
) -> Start:
    deadline = time.monotonic() + START_TIMEOUT
    sent_wall, sent = time.time(), time.perf_counter()
    backend = client.start_backend(environment, kind)
    post = time.perf_counter() - sent
    try:
        poll = pool.submit(wait_ready, client, backend.id, deadline)
        attempts = answer_backend(client, backend, deadline)
        answered = time.perf_counter() - sent
        raced = poll.result(START_TIMEOUT)
        found = client.backend(backend.id)
        assert found.ready_at is not None
        assert found.container_id is not None
        started_at = docker("inspect", "-f", "{{.State.StartedAt}}", found.container_id)
    finally:
        stopping = time.perf_counter()
        client.stop_backend(backend.id)
        stop = time.perf_counter() - stopping
    return Start(
        post=post,
        answered=answered,
        ready=found.ready_at - sent_wall,
        create=found.created_at - sent_wall,
        started=docker_time(started_at) - sent_wall,
        stop=stop,
        attempts=attempts,
        raced=raced,
    )


def relay_made_ahead(controller: str, kind: BackendType) -> bool:
    """Wait (up to RELAY_WAIT s) for the relay the controller makes ahead after an
    http or rpc start to run: its work is done before the next case is measured,
    which it would slow. False if none came."""
    if kind == "pipe" or os.environ.get("BEEPHOST_CONTROLLER_RELAY_POOL") == "0":
        return False
    deadline = time.monotonic() + RELAY_WAIT
    filters = ["--filter", f"label=io.beephost.controller={controller}"]
    filters += [
        "--filter",
        "label=io.beephost.relay-ahead",
        "--filter",
        "status=running",
    ]
    while time.monotonic() < deadline:
        commands = docker("ps", "--no-trunc", "--format", "{{.Command}}", *filters)
        if f"/run/beephost/{kind}.sock" in commands:
            return True
        time.sleep(0.05)
    return False


def container_floor(image: str, run: str, network: str | None = None) -> float:
    """Seconds a ``docker run`` of ``python3 -c pass`` takes: without a network, or
    on ``network`` with a port published on loopback (what an http or rpc backend's
    container costs the engine before its server runs)."""
    started = time.perf_counter()
    subprocess.run(
        _floor_command(image, run, network),
        check=True,
        capture_output=True,
        timeout=120,
    )
    return time.perf_counter() - started


def _floor_command(image: str, run: str, network: str | None) -> list[str]:
    """The ``docker run`` of a floor: ``python3 -c pass`` without a network, or on
    ``network`` with a port published on loopback."""
    command = ["docker", "run", "--rm", "--network", network or "none"]
    if network is not None:
        command += ["--publish", "127.0.0.1::5678"]
    return [*command, "--label", f"{RUN_LABEL}={run}", image, "python3", "-c", "pass"]


def relayed_floor(image: str, run: str, network: str) -> float:
    """Seconds the two ``docker run`` of an http or rpc backend's containers take when
    started together, as a start makes them: ``python3 -c pass`` without a network
    (the backend) and on ``network`` with a port published on loopback (its relay),
    from the first started to the last one's CLI ended: what the engine costs such a
    start before either server runs."""
    started = time.perf_counter()
    runs = [
        subprocess.Popen(_floor_command(image, run, on), stdout=subprocess.DEVNULL)
        for on in (None, network)
    ]
    for process in runs:
        if process.wait(timeout=120) != 0:
            raise RuntimeError(f"a relayed floor's docker run failed: {process.args!r}")
    return time.perf_counter() - started


def code_mounts(
    client: ControllerClient, pool: concurrent.futures.ThreadPoolExecutor, image: str
) -> list[str]:
    """``docker run`` options mounting the code volumes the backends of ``image`` mount
    (its /usr and /opt, read-only), so that a stack floor reads its files as they do;
    none where the engine's storage driver needs none. The first start of the image
    asks for their fill (about 2 s): one unmeasured start, then up to 60 s for it."""
    driver = docker("info", "-f", "{{.Driver}}").strip()
    if driver not in PRIVATE_CACHE_DRIVERS:
        return []
    start_backend(client, pool, "bench", "pipe")
    image_id = docker("image", "inspect", "-f", "{{.Id}}", image).strip()

    def volume(part: str) -> str:
        found = docker(
            "volume", "ls", "-q",
            "--filter", f"label={LABEL_CODE_IMAGE}={image_id}",
            "--filter", f"label={LABEL_CODE_PART}={part}",
        )  # fmt: skip
        return found.strip()

    deadline = time.monotonic() + 60
    while not volume(COMPLETE):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the code volumes of {image} were not filled in 60 s")
        time.sleep(0.2)
    return [
        option
        for path in CODE_PATHS
        for option in ("-v", f"{volume(path.strip('/'))}:{path}:ro")
    ]


def stack_floor(
    image: str, kind: BackendType, run: str, mounts: Sequence[str]
) -> float:
    """Seconds from a ``docker run`` of the backend's image to its interpreter having
    imported ``STACKS[kind]`` (the line it prints then), with the server's interpreter
    and garbage collection off as the server boots: the least any server on that stack
    can answer in, before it listens or starts a worker. Unlike the container floor, the
    container's exit and removal are not counted: a server answers before either."""
    imports = f"import gc; gc.disable(); import {', '.join(STACKS[kind])}; print('in')"
    python = f"{SERVER_VENVS[kind]}/bin/python"
    command = ["docker", "run", "--rm", "--network", "none"]
    command += ["--label", f"{RUN_LABEL}={run}", *mounts, "--entrypoint", python, image]
    started = time.perf_counter()
    with subprocess.Popen(
        [*command, "-u", "-c", imports], stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        imported = time.perf_counter() - started
        process.wait(timeout=120)
    if line.strip() != "in" or process.returncode != 0:
        raise RuntimeError(f"the {kind} stack did not import in {image}: {line!r}")
    return imported


def jupyter_start(tmp: Path) -> float:
    """Spawn a kernel; seconds until the reply to its first ``1+1`` execute."""
    directory = Path(tempfile.mkdtemp(prefix="kernel-", dir=tmp))
    server = _jupyter.KernelServer("jupyter", directory)
    started = time.perf_counter()
    try:
        server.start()
        assert server.client is not None
        server.client.wait_for_ready(timeout=_jupyter.TIMEOUT_S)  # iopub connected too
        _jupyter.KernelEval(server).block(1)
        return time.perf_counter() - started
    finally:
        server.stop()


# --------------------------------------------------------------------------------------
# 2. and 3. environments


@dataclass
class Build:
    """One environment create, in seconds from the request; its log with arrival times."""

    seconds: float
    job_seconds: float  # the job's created_at to finished_at, on the server
    log: list[tuple[float, str]]


def create_environment(
    client: ControllerClient, controller: Controller, name: str, requirements: list[str]
) -> Build:
    log: list[tuple[float, str]] = []
    started = time.perf_counter()

    def on_log(line: LogLine) -> None:
        log.append((time.perf_counter() - started, line.line))

    env = client.create_environment(name, requirements=requirements)
    controller.environments.append(name)
    assert env.job_id is not None
    job = client.wait_job(env.job_id, on_log=on_log, timeout=BUILD_TIMEOUT)
    seconds = time.perf_counter() - started
    if not job.succeeded:
        text = "\n".join(line for _, line in log)
        raise RuntimeError(f"building {name} failed: {job.error}\n{quoted_tail(text)}")
    assert job.finished_at is not None
    return Build(seconds, job.finished_at - job.created_at, log)


def ensure_existing(
    client: ControllerClient, name: str, requirements: list[str]
) -> float:
    before = client.environment(name)
    started = time.perf_counter()
    env = client.ensure_environment(name, requirements=requirements)
    seconds = time.perf_counter() - started
    if env.status != "ready" or env.job_id != before.job_id:
        raise RuntimeError(f"ensure of {name} queued a build: {env}")
    return seconds


def pool_wheels() -> set[str]:
    pool = default_cache_dir() / "wheels" / f"cp{PYTHON.replace('.', '')}"
    return {path.name for path in pool.glob("*.whl")} if pool.is_dir() else set()


PHASES = (  # (name, the log line that ends it)
    ("queue, base image check", r"^resolving "),
    ("resolution (uv, PyPI)", r"^building \S+$"),
    ("backend images check", r"^wheelhouse: "),
    ("wheels to the pool", r"^building \S+ offline"),
    ("offline image build", r"^built "),
)


def phases(build: Build) -> list[tuple[str, float]]:
    """Durations between the log lines that mark the build's steps (arrival times:
    the log stream sends a line as the job logs it)."""
    found, last = [], 0.0
    for name, pattern in PHASES:
        at = next((t for t, line in build.log if re.search(pattern, line)), None)
        if at is None:
            continue
        found.append((name, at - last))
        last = at
    found.append(("record, job end, stream", build.seconds - last))
    return found


def locked_wheels(build: Build) -> int | None:
    for _, line in build.log:
        match = re.match(r"wheelhouse: (\d+) locked wheel", line)
        if match:
            return int(match.group(1))
    return None


# --------------------------------------------------------------------------------------
# report


def stats(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def s(value: float) -> str:
    return f"{value:.3f}"


def ms(value: float) -> str:
    return f"{value * 1000:.0f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--starts", type=int, default=5, help="starts per backend type")
    parser.add_argument(
        "--warmup", type=int, default=1, help="unmeasured starts per type first"
    )
    parser.add_argument(
        "--skip-build", action="store_true", help="skip the fastapi environment build"
    )
    parser.add_argument(
        "--recreates", type=int, default=RECREATES, help="environment re-creates"
    )
    parser.add_argument("--seed", type=int, default=None, help="shuffle seed")
    return known_args(parser, argv)


@dataclass
class Results:
    starts: dict[str, list[Start]] = field(default_factory=dict)
    floor: list[float] = field(default_factory=list)
    relayed: list[float] = field(default_factory=list)
    stack: dict[str, list[float]] = field(default_factory=dict)
    code_mounts: list[str] = field(default_factory=list)
    jupyter: list[float] = field(default_factory=list)
    setup: Build | None = None
    six: Build | None = None
    recreate: list[Build] = field(default_factory=list)
    ensure: list[float] = field(default_factory=list)
    fastapi: Build | None = None
    pool_before: int = 0
    pool_new: int = 0
    base_image: str = ""


def base_image(client: ControllerClient) -> str:
    """The base image of the run's Python (what the container floor runs)."""
    runtime = next(r for r in client.runtimes() if r.python == PYTHON)
    assert runtime.image is not None
    return runtime.image


def measure(
    args: argparse.Namespace,
    client: ControllerClient,
    controller: Controller,
    tmp: Path,
    say: Callable[[str], None],
) -> Results:
    res = Results()
    say("building the environment without requirements (and the run's backend images)")
    res.setup = create_environment(client, controller, "bench", [])
    res.base_image = base_image(client)
    image = client.environment("bench").image
    assert image is not None
    rng = random.Random(args.seed)
    cases = [*KINDS, *(f"stack:{k}" for k in KINDS), "floor", "relayed", "jupyter"]
    warm = [c for c in cases for _ in range(args.warmup)]
    order = [c for c in cases for _ in range(args.starts)]
    rng.shuffle(order)
    say(f"{len(warm)} warm-up and {len(order)} measured starts, shuffled")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        res.code_mounts = code_mounts(client, pool, image)
        # The relays' network, made by the controller's first http or rpc start.
        start_backend(client, pool, "bench", "http")
        offline = f"beephost-{controller.name}-offline"
        for index, case in enumerate(warm + order):
            measured = index >= len(warm)
            if case == "floor":
                floor = container_floor(res.base_image, controller.run)
                if measured:
                    res.floor.append(floor)
            elif case == "relayed":
                relayed = relayed_floor(res.base_image, controller.run, offline)
                if measured:
                    res.relayed.append(relayed)
            elif case.startswith("stack:"):
                kind = next(k for k in KINDS if f"stack:{k}" == case)
                stack = stack_floor(image, kind, controller.run, res.code_mounts)
                if measured:
                    res.stack.setdefault(kind, []).append(stack)
            elif case == "jupyter":
                kernel = jupyter_start(tmp)
                if measured:
                    res.jupyter.append(kernel)
            else:
                kind = next(k for k in KINDS if k == case)
                start = start_backend(client, pool, "bench", kind)
                relay_made_ahead(controller.name, kind)
                if measured:
                    res.starts.setdefault(kind, []).append(start)

    say(f"re-creating an environment {args.recreates} times")
    res.six = create_environment(client, controller, "six-a", SIX)
    for i in range(args.recreates):
        name = f"six-b{i}"
        res.recreate.append(create_environment(client, controller, name, SIX))
        client.delete_environment(name)
        controller.environments.remove(name)
        res.ensure.append(ensure_existing(client, "six-a", SIX))

    if not args.skip_build:
        say(f"building a new environment: {', '.join(FASTAPI)}")
        before = pool_wheels()
        res.fastapi = create_environment(client, controller, "fastapi", FASTAPI)
        res.pool_before, res.pool_new = len(before), len(pool_wheels() - before)
    return res


def report(args: argparse.Namespace, res: Results, elapsed: float) -> None:
    floor = statistics.median(res.floor)
    headers = ["case", "n", "p50 s", "min s", "max s", "p50 ÷ floor"]
    rows: list[list[str]] = []

    def row(name: str, values: list[float], ratio: bool = True) -> None:
        p50, low, high = stats(values)
        cells = [name, str(len(values)), s(p50), s(low), s(high)]
        rows.append([*cells, f"{p50 / floor:.2f}x" if ratio else "-"])

    row(f"container floor: docker run {res.base_image} python3 -c pass", res.floor)
    row(
        "relayed floor: the same without network and, at once, on the offline "
        "network publishing a port",
        res.relayed,
    )
    for kind in KINDS:
        row(f"{kind} stack floor: docker run importing {', '.join(STACKS[kind])}", res.stack[kind])  # fmt: skip
    code = "the code volumes the backends mount" if res.code_mounts else "its layers"
    row("jupyter kernel: spawn -> first execute reply", res.jupyter)
    rows.append([LITERATURE, "-", "3-5", "-", "-", "-"])
    for kind in KINDS:
        starts = res.starts[kind]
        row(f"{kind}: start_backend -> 1+1 answered", [x.answered for x in starts])
        row(f"{kind}: start_backend -> controller ready", [x.ready for x in starts])
    assert res.six is not None
    assert res.setup is not None
    row("re-create env (same requirements) -> job succeeded", [b.seconds for b in res.recreate], ratio=False)  # fmt: skip
    row("  of it the job on the server (created -> finished)", [b.job_seconds for b in res.recreate], ratio=False)  # fmt: skip
    row("ensure_environment of the existing env (PUT)", res.ensure, ratio=False)
    if res.fastapi is not None:
        row("new env fastapi, uvicorn[standard] -> job succeeded", [res.fastapi.seconds], ratio=False)  # fmt: skip
    row("(first six==1.17.0 env: resolve + build)", [res.six.seconds], ratio=False)
    row("(setup: empty env + the run's 3 backend images)", [res.setup.seconds], ratio=False)  # fmt: skip

    print(
        f"controller: Python {PYTHON}, {args.starts} starts per case after "
        f"{args.warmup} warm-up, shuffled (seed {args.seed}), bench took {elapsed:.0f} s"
    )
    print(f"code under test: {code_under_test()}")
    print(render_text(headers, rows))
    print(
        "  floor: `docker run` CLI wall time (create + start + exit + remove), no "
        "hardening; backends run read-only, capped, non-root, without network"
    )
    print(
        "  relayed floor: the two containers of an http or rpc start (the backend "
        "without network, its relay on the controller's offline network publishing "
        "its port) run at once, to the later CLI's end"
    )
    print(
        "  stack floor: `docker run` of the environment's image to its interpreter "
        f"having imported the stack (exit and removal not counted), code read from {code}"
    )
    print(
        "  controller ready: its ready_at (own probe: the backend answers `info`), "
        "not Docker's first health check"
    )
    print()
    print("where a start goes, p50 ms from the request sent (to the 1+1 answer):")
    headers = ["type", "create", "start", "boot", "answered", "POST reply", "ready", "stop", "attempts"]  # fmt: skip
    rows = []
    for kind in KINDS:
        starts = res.starts[kind]

        def p50(get: Callable[[Start], float], runs: list[Start] = starts) -> float:
            return statistics.median(get(x) for x in runs)

        rows.append(
            [
                kind,
                ms(p50(lambda x: x.create)),
                ms(p50(lambda x: x.started - x.create)),
                ms(p50(lambda x: x.answered - x.started)),
                ms(p50(lambda x: x.answered)),
                ms(p50(lambda x: x.post)),
                ms(p50(lambda x: x.ready)),
                ms(p50(lambda x: x.stop)),
                f"{p50(lambda x: x.attempts):.0f}",
            ]
        )
    print(render_text(headers, rows))
    print(
        "  create: POST sent -> container created (API, store, relay for http/rpc, "
        "docker create); start: -> Docker's StartedAt; boot: -> 1+1 answered "
        f"(interpreter, server import, listen, worker; retried every {POLL * 1000:.0f} ms)"
    )
    raced = sum(x.raced for starts in res.starts.values() for x in starts)
    if raced:
        print(
            f"  {raced} long poll(s) began after the change to ready and waited 5 s "
            "for the next (the ready column uses ready_at, unaffected)"
        )
    print()
    print(
        "environment builds, phases in s from the job log's lines as they arrived "
        "(streamed as logged):"
    )
    builds = [("six==1.17.0 (first)", res.six)]
    if res.fastapi is not None:
        builds.append(("fastapi, uvicorn[standard]", res.fastapi))
    for name, build in builds:
        print(
            f"  {name}, {locked_wheels(build)} locked wheel(s), {s(build.seconds)} s:"
        )
        print("    " + ", ".join(f"{step} {s(sec)}" for step, sec in phases(build)))
    if res.fastapi is not None:
        warmth = (
            "warm: it had every wheel"
            if res.pool_new == 0
            else f"{res.pool_new} wheel(s) downloaded"
        )
        print(
            f"  wheel pool before the fastapi build: {res.pool_before} wheels "
            f"({warmth}); it is kept between runs"
        )

    print()
    print("goals:")
    worst = max(
        KINDS, key=lambda k: statistics.median(x.answered for x in res.starts[k])
    )
    worst_p50 = statistics.median(x.answered for x in res.starts[worst])
    verdict(
        worst_p50 < START_GOAL,
        f"start-to-ready p50 < {START_GOAL:g} s for every type: slowest {worst} "
        f"{worst_p50:.3f} s ({worst_p50 / floor:.2f}x the container floor)",
    )
    relayed = statistics.median(res.relayed)
    for kind in KINDS:
        answered = statistics.median(x.answered for x in res.starts[kind])
        stack = statistics.median(res.stack[kind])
        engine = (
            ""
            if kind == "pipe"
            else f" (a relay made at the start and the backend, the relayed floor, "
            f"{relayed / floor:.2f}x; RELAY_POOL makes it ahead)"
        )
        verdict(
            answered <= COLD_START_GOAL * floor,
            f"{kind} cold start <= {COLD_START_GOAL:g}x the container floor: "
            f"{answered / floor:.2f}x{engine}; its stack's imports alone take "
            f"{stack / floor:.2f}x, so {answered / stack:.2f}x the stack floor is the "
            "server's own (its imports, listen, worker, first answer)",
        )
    recreate = statistics.median(b.seconds for b in res.recreate)
    verdict(
        recreate < RECREATE_GOAL,
        f"re-creating an existing environment < {RECREATE_GOAL:g} s: p50 "
        f"{recreate:.3f} s (ensure of the existing one {statistics.median(res.ensure):.3f} s)",
    )
    if res.fastapi is None:
        print(
            f"  skipped  new fastapi-sized environment < {BUILD_GOAL:g} s (--skip-build)"
        )
    else:
        verdict(
            res.fastapi.seconds < BUILD_GOAL,
            f"new fastapi-sized environment < {BUILD_GOAL:g} s end to end: "
            f"{res.fastapi.seconds:.1f} s (wheel pool "
            f"{'warm' if res.pool_new == 0 else 'cold: ' + str(res.pool_new) + ' downloaded'})",
        )


def verdict(met: bool, text: str) -> None:
    print(f"  {'met    ' if met else 'NOT met'}  {text}")


@contextlib.contextmanager
def running(
    say: Callable[[str], None], settings: Mapping[str, str] | None = None
) -> Iterator[tuple[Controller, ControllerClient, Path]]:
    """A controller on a snapshot of the workspace, its client and a scratch directory.

    Afterwards, always (signals held off meanwhile): backends stopped and environments
    deleted through the API, the process stopped, what carries the run's labels removed.
    """
    workspace_root = Path(__file__).resolve().parent.parent
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bhb-ctl-")))
        controller = Controller(
            workdir=tmp,
            port=free_port(),
            workspace=tmp / "workspace",
            settings=dict(settings or {}),
        )
        try:
            snapshot_workspace(workspace_root, controller.workspace)
            say(f"controller {controller.name} on {controller.url}")
            controller.start()
            client = stack.enter_context(ControllerClient(controller.url))
            try:
                yield controller, client, tmp
            except Exception:
                print(quoted_tail(controller.log()), file=sys.stderr)
                raise
            finally:
                with _signals_held():
                    controller.clean_api(client)
        finally:
            with _signals_held():
                controller.stop(grace=20)
                removed = controller.remove_owned()
            say(f"cleaned up: {len(removed)} container(s), network(s), image(s)")


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """A second Ctrl-C or a SIGTERM must not cut the clean-up short."""
    handlers = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def no_docker_cli() -> bool:
    """True (and said on stderr) when there is no docker CLI to reach the engine."""
    if shutil.which("docker") is not None:
        return False
    print("no docker CLI: this bench needs the local Docker engine", file=sys.stderr)
    return True


def stoppable() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so that the clean-up runs."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if no_docker_cli():
        return 2
    stoppable()
    began = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - began:5.0f} s] {text}", file=sys.stderr)

    with running(say) as (controller, client, tmp):
        results = measure(args, client, controller, tmp, say)
    report(args, results, time.perf_counter() - began)
    return 0


if __name__ == "__main__":
    entry(main)


@contextlib.contextmanager
def bench_environment(
    settings: Mapping[str, str] | None = None,
) -> Iterator[tuple[Controller, ControllerClient, Path, Callable[[str], None]]]:
    """A benchmark's own main: stoppable, a running controller with the environment
    ``bench`` (no requirements) built, a scratch directory, and ``say`` (stderr, with
    the seconds since the start)."""
    stoppable()
    began = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - began:5.0f} s] {text}", file=sys.stderr)

    with running(say, settings) as (ctl, client, scratch):
        say("building the environment without requirements (and the backend images)")
        create_environment(client, ctl, "bench", [])
        yield ctl, client, scratch, say


#: What a benchmark's measure returns and its report reads.
T = TypeVar("T")


def bench_main(
    measure: Callable[[Controller, ControllerClient, Path, Callable[[str], None]], T],
    report: Callable[[T], None],
    settings: Mapping[str, str] | None = None,
) -> int:
    """A benchmark's main: ``measure`` in ``bench_environment`` (a controller with
    ``settings`` over the bench's), then ``report`` once
    the controller and its backends are gone. 2 without a docker CLI, else 0."""
    if no_docker_cli():
        return 2
    with bench_environment(settings) as (ctl, client, scratch, say):
        result = measure(ctl, client, scratch, say)
    report(result)
    return 0
