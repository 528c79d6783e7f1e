"""Load: 32 concurrent clients over the three transports for 60 s of mixed operations.

One environment (no requirements), one backend of each type through a real controller,
16 threads with the blocking SDK and 16 asyncio tasks with ``aconnect``, spread over
pipe, http and rpc. Each iteration evaluates, executes with stdout, runs a session of
its own (open, set state, read it back, close), and creates, uses and releases a
remote ``collections.Counter``; every sixth one also runs ``time.sleep(2)`` with a
0.2 s deadline, whose ``ExecutionTimeout`` is the expected outcome (counted apart).

Asserted: zero unexpected errors (every answer is checked), and afterwards nothing
leaked: sessions and handles back to the default session alone, the same worker
processes as before, the same containers and networks, no backend restarted, each
ready again (what the controller said of each during the load is reported: Docker's
health check can time out while the CPUs are saturated).
Latency (p50/p99/max per transport and operation) and throughput are printed and
recorded, never asserted: performance belongs in bench/.

``BEEPHOST_LOAD_SECONDS`` overrides the 60 s.
"""

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

import beephost_client
from beephost_client import Timeout
from beephost_client.controller import Backend, ControllerClient
from beephost_protocol.errors import ExecutionTimeout
from tests.e2e.containers import inspect
from tests.e2e.controller_process import ControllerProcess
from tests.reliability.faults_support import StatusWatcher
from tests.reliability.load_support import (
    KINDS,
    BackendState,
    Recorder,
    ensure_environment,
    format_table,
    p99_text,
    settled_state,
    start_backends,
)
from tests.reliability.summary import record

pytestmark = pytest.mark.docker

SECONDS = float(os.environ.get("BEEPHOST_LOAD_SECONDS", "60"))
SYNC_CLIENTS = 16
ASYNC_CLIENTS = 16
TIMEOUT_EVERY = 6  # iterations between two expected timeouts, per client
TIMEOUT = Timeout(request=30.0, connect=10.0)
TRANSPORT = {"pipe": "pipe", "http": "http", "rpc": "grpc"}
SLEEP = "import time; time.sleep(2)"  # run with a 0.2 s deadline

T = TypeVar("T")


class WrongAnswer(AssertionError):
    """A request succeeded with the wrong result."""


@pytest.fixture(scope="module")
def backends(api: ControllerClient) -> Iterator[dict[str, Backend]]:
    environment = ensure_environment(api, "load")
    started = start_backends(api, environment)
    try:
        yield started
    finally:
        for backend in started.values():
            api.stop_backend(backend.id)


class Steps:
    """Times each step of one client's iterations; remembers which step failed."""

    def __init__(self, rec: Recorder, kind: str, offset: int) -> None:
        self.rec = rec
        self.kind = kind
        self.offset = offset  # spreads the clients' timeouts over the iterations
        self.op = ""
        self.failed: str | None = None  # the first step of the iteration that failed

    def run(self, op: str, fn: Callable[[], T]) -> T:
        self.op = op
        try:
            return self.rec.timed(self.kind, op, fn)
        except BaseException:
            self.failed = self.failed or op
            raise

    async def arun(self, op: str, fn: Callable[[], Awaitable[T]]) -> T:
        self.op = op
        started = time.perf_counter()
        try:
            value = await fn()
        except BaseException:
            self.failed = self.failed or op
            raise
        self.rec.add(self.kind, op, time.perf_counter() - started)
        return value

    def check(self, ok: bool, what: str) -> None:
        """Fail the step just run if its answer is wrong."""
        if not ok:
            self.failed = self.failed or self.op
            raise WrongAnswer(what)

    def timed_out(self, exc: ExecutionTimeout, seconds: float) -> bool:
        """Count an expected timeout; whether the session's state is still there."""
        self.rec.add(self.kind, "timeout", seconds)
        self.rec.expect(self.kind, "timeout")
        if exc.data.get("state_lost"):
            self.rec.expect(self.kind, "timeout_state_lost")
            return False
        return True

    def raced(self, seconds: float) -> None:
        """The sleep finished and its success came back although the deadline had
        passed: the core counts a reply that raced its deadline as a success, and
        with the container's CPU saturated its event loop notices the deadline late.
        Not an error; counted apart and reported."""
        self.rec.add(self.kind, "timeout", seconds)
        self.rec.expect(self.kind, "deadline_raced")


def sync_iteration(client: beephost_client.Client, steps: Steps, n: int) -> None:
    value = steps.run("evaluate", lambda: client.evaluate("x * 2 + 1", locals={"x": n}))
    steps.check(value == 2 * n + 1, f"evaluate gave {value!r}")
    result = steps.run("execute", lambda: client.execute(f"print('load', {n})\n{n}"))
    steps.check(
        (result.stdout, result.value) == (f"load {n}\n", n), f"execute: {result}"
    )

    session = steps.run("session.open", client.open_session)
    try:
        steps.run("session.execute", lambda: session.execute(f"state = {n}"))
        state = steps.run("session.evaluate", lambda: session.evaluate("state * 3"))
        steps.check(state == 3 * n, f"session state {state!r}")
        if (n + steps.offset) % TIMEOUT_EVERY == 0:
            _sync_timeout(session, steps, n)
    finally:
        steps.run("session.close", session.close)

    counter = steps.run(
        "object.create", lambda: client.create("collections.Counter", "abracadabra")
    )
    try:
        common = steps.run("object.call", lambda: counter.call("most_common", 1))
        steps.check(common == [("a", 5)], f"most_common gave {common!r}")
        steps.run("object.set", lambda: counter.set("label", f"c{n}"))
        label = steps.run("object.get", lambda: counter.get("label"))
        steps.check(label == f"c{n}", f"attribute {label!r}")
    finally:
        steps.run("object.release", counter.release)


def _sync_timeout(session: beephost_client.Session, steps: Steps, n: int) -> None:
    steps.op = "timeout"
    started = time.perf_counter()
    try:
        session.execute(SLEEP, timeout=0.2)
    except ExecutionTimeout as exc:
        if not steps.timed_out(exc, time.perf_counter() - started):
            return
    else:
        steps.raced(time.perf_counter() - started)
    kept = steps.run("session.evaluate", lambda: session.evaluate("state"))
    steps.check(kept == n, f"state after a timeout: {kept!r}")


async def async_iteration(
    client: beephost_client.AsyncClient, steps: Steps, n: int
) -> None:
    value = await steps.arun(
        "evaluate", lambda: client.evaluate("x * 2 + 1", locals={"x": n})
    )
    steps.check(value == 2 * n + 1, f"evaluate gave {value!r}")
    result = await steps.arun(
        "execute", lambda: client.execute(f"print('load', {n})\n{n}")
    )
    steps.check(
        (result.stdout, result.value) == (f"load {n}\n", n), f"execute: {result}"
    )

    session = await steps.arun("session.open", client.open_session)
    try:
        await steps.arun("session.execute", lambda: session.execute(f"state = {n}"))
        state = await steps.arun(
            "session.evaluate", lambda: session.evaluate("state * 3")
        )
        steps.check(state == 3 * n, f"session state {state!r}")
        if (n + steps.offset) % TIMEOUT_EVERY == 0:
            await _async_timeout(session, steps, n)
    finally:
        await steps.arun("session.close", session.aclose)

    counter = await steps.arun(
        "object.create", lambda: client.create("collections.Counter", "abracadabra")
    )
    try:
        common = await steps.arun("object.call", lambda: counter.call("most_common", 1))
        steps.check(common == [("a", 5)], f"most_common gave {common!r}")
        await steps.arun("object.set", lambda: counter.set("label", f"c{n}"))
        label = await steps.arun("object.get", lambda: counter.get("label"))
        steps.check(label == f"c{n}", f"attribute {label!r}")
    finally:
        await steps.arun("object.release", counter.release)


async def _async_timeout(
    session: beephost_client.AsyncSession, steps: Steps, n: int
) -> None:
    steps.op = "timeout"
    started = time.perf_counter()
    try:
        await session.execute(SLEEP, timeout=0.2)
    except ExecutionTimeout as exc:
        if not steps.timed_out(exc, time.perf_counter() - started):
            return
    else:
        steps.raced(time.perf_counter() - started)
    kept = await steps.arun("session.evaluate", lambda: session.evaluate("state"))
    steps.check(kept == n, f"state after a timeout: {kept!r}")


def raced_text(rec: Recorder, kind: str) -> str:
    raced = rec.expected[(kind, "deadline_raced")]
    return f" (+{raced} finished past their deadline, CPU saturated)" if raced else ""


@dataclass
class Run:
    """When the clients start (all at once) and stop."""

    start: threading.Event = field(default_factory=threading.Event)
    stop_at: float = 0.0

    def running(self) -> bool:
        return time.monotonic() < self.stop_at


def run_sync_client(backend: Backend, rec: Recorder, name: str, run: Run) -> None:
    kind = backend.type
    steps = Steps(rec, kind, offset=int(name.rpartition("-")[2]))
    try:
        assert backend.endpoint is not None
        with beephost_client.connect(
            backend.endpoint, token=backend.token, timeout=TIMEOUT
        ) as client:
            run.start.wait()
            n = 0
            while run.running():
                steps.failed = None
                try:
                    sync_iteration(client, steps, n)
                except Exception as exc:
                    rec.fail(kind, name, steps.failed or steps.op, exc)
                rec.iteration(kind)
                n += 1
    except Exception as exc:  # the client itself broke (connect, close)
        rec.fail(kind, name, "client", exc)


async def run_async_client(
    backend: Backend, rec: Recorder, name: str, run: Run
) -> None:
    kind = backend.type
    steps = Steps(rec, kind, offset=int(name.rpartition("-")[2]))
    try:
        assert backend.endpoint is not None
        async with beephost_client.aconnect(
            backend.endpoint, token=backend.token, timeout=TIMEOUT
        ) as client:
            n = 0
            while run.running():
                steps.failed = None
                try:
                    await async_iteration(client, steps, n)
                except Exception as exc:
                    rec.fail(kind, name, steps.failed or steps.op, exc)
                rec.iteration(kind)
                n += 1
    except Exception as exc:
        rec.fail(kind, name, "client", exc)


def run_async_clients(plan: list[tuple[Backend, str]], rec: Recorder, run: Run) -> None:
    """Every async client as a task of one event loop, in this (its own) thread."""

    async def main() -> None:
        await asyncio.gather(*(run_async_client(b, rec, name, run) for b, name in plan))

    run.start.wait()
    asyncio.run(main())


def _same_as(before: BackendState) -> Callable[[BackendState], bool]:
    return lambda state: state.summary == before.summary


def test_32_clients_for_60_seconds_without_errors_or_leaks(
    api: ControllerClient,
    controller: ControllerProcess,
    backends: dict[str, Backend],
    docker_cli: str,
) -> None:
    containers = {k: b.container_id or "" for k, b in backends.items()}
    for backend in backends.values():
        assert backend.endpoint is not None
        with beephost_client.connect(backend.endpoint, token=backend.token) as client:
            client.open_session().close()  # from now on it keeps a spare worker

    def server_default_and_spare(state: BackendState) -> bool:
        return state.processes.count("worker") == 2

    baseline = {
        k: settled_state(docker_cli, c, k, backends[k].token, server_default_and_spare)
        for k, c in containers.items()
    }
    networks = sorted(controller.owned("network"))
    for kind, state in baseline.items():
        assert (state.sessions, state.handles) == (1, 0), (kind, state)
        # Settled, not timed out: the probe tells the workers from the server.
        assert server_default_and_spare(state), (kind, state)

    rec = Recorder()
    run = Run()
    clients = [KINDS[i % 3] for i in range(SYNC_CLIENTS + ASYNC_CLIENTS)]
    threads = [
        threading.Thread(
            target=run_sync_client,
            args=(backends[kind], rec, f"sync-{i}", run),
            name=f"load-sync-{i}",
        )
        for i, kind in enumerate(clients[:SYNC_CLIENTS])
    ]
    plan = [
        (backends[kind], f"async-{i}")
        for i, kind in enumerate(clients[SYNC_CLIENTS:], SYNC_CLIENTS)
    ]
    threads.append(
        threading.Thread(
            target=run_async_clients, args=(plan, rec, run), name="load-async"
        )
    )
    with contextlib.ExitStack() as stack:
        # What the controller says of each backend meanwhile (one look a second).
        watchers = {
            k: stack.enter_context(StatusWatcher(controller, b.id, interval=1.0))
            for k, b in backends.items()
        }
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # the clients are made (connections open on first use)
        began = time.monotonic()
        run.stop_at = began + SECONDS
        run.start.set()
        for thread in threads:
            thread.join(SECONDS + 120)
            assert not thread.is_alive(), f"{thread.name} is stuck"
        elapsed = time.monotonic() - began
    statuses = {k: " -> ".join(w.statuses()) for k, w in watchers.items()}

    table = format_table(rec, elapsed, KINDS)
    per_kind = {k: clients.count(k) for k in KINDS}
    print(
        f"\nload: {SYNC_CLIENTS} sync + {ASYNC_CLIENTS} async clients "
        f"{per_kind} for {elapsed:.1f} s\n{table}"
    )
    for failure in rec.failures[:20]:
        print(f"FAILURE {failure}")

    # Afterwards: nothing leaked.
    after = {
        k: settled_state(
            docker_cli,
            c,
            k,
            backends[k].token,
            _same_as(baseline[k]),
        )
        for k, c in containers.items()
    }
    spawned = {
        k: (
            after[k].spawns - baseline[k].spawns,
            after[k].spawn_seconds - baseline[k].spawn_seconds,
        )
        for k in KINDS
    }
    spawn_text = {
        k: f"{n} workers started (mean {total / max(n, 1) * 1e3:.0f} ms each)"
        for k, (n, total) in spawned.items()
    }
    print("\n".join(f"{k:<9} {text}" for k, text in spawn_text.items()))
    for kind, backend in backends.items():
        print(f"{kind:<9} status during the load: {statuses[kind]}")
        if "unhealthy" in statuses[kind]:
            health = inspect(docker_cli, containers[kind])["State"]["Health"]
            for probe in health["Log"]:
                output = probe["Output"].strip().replace("\n", " | ")
                print(f"  health check exit {probe['ExitCode']}: {output[:200]}")
        # Docker's health check may fail while the CPUs are saturated: the backend
        # must be ready again once the load is gone.
        api.wait_backend(backend.id, timeout=60)
    sdk_sessions = {}
    for kind, backend in backends.items():
        assert backend.endpoint is not None
        with beephost_client.connect(backend.endpoint, token=backend.token) as client:
            sdk_sessions[kind] = client.sessions()
    listed = {b.id: b for b in api.backends()}
    owned = sorted(controller.owned("backend"))
    leaks = {
        kind: [
            what
            for what, bad in (
                (f"sessions {after[kind].sessions}", after[kind].sessions != 1),
                (f"handles {after[kind].handles}", after[kind].handles != 0),
                (
                    f"processes {after[kind].processes} (before: "
                    f"{baseline[kind].processes})",
                    after[kind].processes != baseline[kind].processes,
                ),  # the server and its workers: the default one and the spare
                (f"zombies {after[kind].zombies}", after[kind].zombies != 0),
                (
                    f"SDK sessions {sdk_sessions[kind]}",
                    sdk_sessions[kind] != ["default"],
                ),
                (
                    f"backend {listed.get(backends[kind].id)}",
                    (
                        listed.get(backends[kind].id) is None
                        or listed[backends[kind].id].status != "ready"
                        or listed[backends[kind].id].restarts != 0
                    ),
                ),
            )
            if bad
        ]
        for kind in KINDS
    }
    extra_containers = sorted(set(owned) - {c[:12] for c in containers.values()})
    extra_networks = sorted(set(controller.owned("network")) - set(networks))

    for kind in KINDS:
        failures = [f for f in rec.failures if f.transport == kind]
        errors = sorted({f.error for f in failures})
        lost = "; ".join(leaks[kind]) or "nothing"
        outcome = "pass" if not failures and not leaks[kind] else "FAIL"
        record(
            "load",
            f"{per_kind[kind]} clients (sync+async), {elapsed:.0f} s mixed ops, "
            f"{rec.ops(kind)} ops ({rec.ops(kind) / elapsed:.0f}/s), "
            f"{rec.expected[(kind, 'timeout')]} expected timeouts"
            f"{raced_text(rec, kind)}, "
            f"{len(failures)} errors{' ' + str(errors) if errors else ''}; "
            f"{spawn_text[kind]}; status {statuses[kind]}; {p99_text(rec, kind)}",
            TRANSPORT[kind],
            outcome,
            lost=lost,
        )

    assert not rec.failures, (
        f"{len(rec.failures)} unexpected errors, e.g. {rec.failures[:10]}"
    )
    assert all(rec.iterations[k] > 0 for k in KINDS), rec.iterations
    assert not any(leaks.values()), leaks
    assert len(listed) == 3, listed
    assert extra_containers == [], f"containers nobody started: {extra_containers}"
    assert extra_networks == [], f"networks nobody created: {extra_networks}"
