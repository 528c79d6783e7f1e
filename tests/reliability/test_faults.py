"""Faults: backends and the controller killed with -9 while they work.

What tests/e2e/test_controller_backends.py does not already cover:

* each backend type killed while clients are mid-request, twice: ``docker kill`` (the
  controller restarts it) and SIGKILL of the server process from the host (Docker's
  policy restarts it). Every failed request raised a typed SDK exception, the
  controller told the truth meanwhile, and the same client objects recovered at the
  same URL;
* the controller killed right after starting one backend of each type (the e2e test
  does rpc alone): all adopted, ready and answering, no orphan;
* the controller killed while it stops a backend, for each type, at three points of
  the stop: the restarted controller finishes the stop (the backend is gone with its
  container, network and socket directory) or, had the DELETE not got to it, still
  runs it; never an orphan, never a false "exited (missing)";
* the controller killed during a build while clients use running backends: the
  build resumes, and the clients never notice (the data plane does not need it).

Every outcome is recorded for the suite's summary (area "faults").
"""

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from beephost_client import ConnectError, ConnectionLost
from beephost_client.controller import Backend, ControllerClient
from beephost_protocol.errors import NotFound, SessionLost, Unavailable
from tests.e2e.containers import docker, kill_main_process
from tests.e2e.controller_process import ControllerProcess, wait_restarted
from tests.reliability.faults_support import (
    StatusWatcher,
    Traffic,
    error_types,
)
from tests.reliability.load_support import KINDS, ensure_environment, start_backends
from tests.reliability.summary import record

pytestmark = pytest.mark.docker

#: What a client may see when its backend dies under it (subclasses included).
TYPED = (ConnectionLost, ConnectError, SessionLost, Unavailable)
TRANSPORT = {"pipe": "pipe", "http": "http", "rpc": "grpc"}


@pytest.fixture(scope="module")
def environment(api: ControllerClient) -> str:
    return ensure_environment(api, "faults")


def _untyped(errors: list[BaseException]) -> list[BaseException]:
    return [e for e in errors if not isinstance(e, TYPED)]


def _orphans(api: ControllerClient, controller: ControllerProcess) -> list[str]:
    """Containers with the controller's label that no listed backend owns."""
    listed = {(b.container_id or "")[:12] for b in api.backends()}
    return sorted(set(controller.owned("backend")) - listed)


@contextlib.contextmanager
def _none_left(
    api: ControllerClient, controller: ControllerProcess, backends: Iterable[Backend]
) -> Iterator[None]:
    """When the block ends, stops each of ``backends`` the block has not; if the block
    passed, checks that none of their containers is left. (Not that the controller
    owns none: the first start of an image copies it into code volumes, in a container
    of the controller's that may still run.)"""
    backends = list(backends)
    try:
        yield
    finally:
        for backend in backends:
            with contextlib.suppress(NotFound):
                api.stop_backend(backend.id)
    left = {(b.container_id or "")[:12] for b in backends} & set(controller.owned())
    assert not left, left


@contextlib.contextmanager
def _backends(
    api: ControllerClient,
    controller: ControllerProcess,
    environment: str,
    kinds: Iterable[str] = KINDS,
) -> Iterator[dict[str, Backend]]:
    """One ready backend per kind for the block, then :func:`_none_left`."""
    backends = start_backends(api, environment, kinds)
    with _none_left(api, controller, backends.values()):
        yield backends


# -- backends killed during requests -------------------------------------------------


def _kill(docker_cli: str, how: str, container: str) -> None:
    if how == "docker kill":
        docker(docker_cli, "kill", container)
    else:  # the server process, from the host: Docker sees a crash and restarts it
        kill_main_process(docker_cli, container)


@pytest.mark.parametrize("kind", KINDS)
def test_a_backend_killed_during_requests(
    api: ControllerClient,
    controller: ControllerProcess,
    environment: str,
    kind: str,
) -> None:
    problems: list[str] = []
    with _backends(api, controller, environment, [kind]) as backends:
        backend = backends[kind]
        with Traffic(backend, sync_clients=2, async_clients=1) as traffic:
            traffic.wait_all_succeed(since=0.0)
            for number, how in enumerate(("docker kill", "SIGKILL server"), 1):
                with StatusWatcher(controller, backend.id) as watcher:
                    time.sleep(0.3)  # requests are in flight
                    killed = time.monotonic()
                    _kill(controller.docker_cli, how, backend.container_id or "")
                    now = wait_restarted(api, backend.id, restarts=number)
                    ready = time.monotonic()
                    recovered = traffic.wait_all_succeed(since=ready)
                errors = traffic.errors_since(killed)
                seen = error_types(errors)
                untyped = _untyped(errors)
                statuses = watcher.statuses()
                print(
                    f"\n{kind} {how}: back in {ready - killed:.1f} s, clients "
                    f"recovered {recovered:.1f} s later; errors {dict(seen)}; "
                    f"status {' -> '.join(statuses)}; {now.restarts} restarts, "
                    f"last exit {now.last_exit} ({now.exit_code})"
                )
                truthful = (
                    now.last_exit == "crashed"
                    and now.endpoint == backend.endpoint
                    and now.container_id == backend.container_id
                    # Docker restarts a killed server well within the watcher's
                    # poll: then only the restart count and the exit tell; after
                    # `docker kill` it stays exited until the controller restarts it.
                    and (
                        how != "docker kill"
                        or any(not s.startswith("ready") for s in statuses)
                    )
                )
                ok = not untyped and truthful
                record(
                    "faults",
                    f"{how} of the backend during requests (3 clients): errors "
                    f"{dict(seen) or 'none'}; status {' -> '.join(statuses)}; "
                    f"restarts {now.restarts}, last_exit {now.last_exit}; "
                    f"same clients recovered {recovered:.1f} s after ready",
                    TRANSPORT[kind],
                    "pass" if ok else "FAIL",
                    lost="in-flight requests and sessions (typed errors)",
                )
                if untyped:
                    problems.append(f"{how}: untyped errors {untyped[:5]!r}")
                if not truthful:
                    problems.append(f"{how}: status {statuses}, backend {now}")
                assert errors, f"{how}: no request failed; was nothing in flight?"
    assert not problems, problems


# -- the controller killed during a start ----------------------------------------------


def test_the_controller_killed_during_a_start_of_each_type(
    api: ControllerClient,
    controller: ControllerProcess,
    environment: str,
) -> None:
    started = {kind: api.start_backend(environment, kind) for kind in KINDS}  # type: ignore[arg-type]
    at_kill = {kind: b.status for kind, b in started.items()}
    controller.kill()
    controller.start()
    with _none_left(api, controller, started.values()):
        outcomes = {}
        for kind, backend in started.items():
            adopted = api.wait_backend(backend.id, timeout=60)
            with api.connect_backend(backend.id) as client:
                answer = client.evaluate("2 ** 10")
            outcomes[kind] = (adopted, answer)
        orphans = _orphans(api, controller)
        networks = set(controller.owned("network"))
        for kind, (adopted, answer) in outcomes.items():
            same = adopted.container_id == started[kind].container_id
            ok = (
                adopted.status == "ready"
                and same
                and answer == 1024
                and not orphans
                and networks == {controller.offline_network}
            )
            record(
                "faults",
                f"controller kill -9 right after start_backend ({at_kill[kind]}), "
                f"restart: {'adopted its container' if same else 'ANOTHER container'}"
                f", {adopted.status}, 2 ** 10 = {answer}; orphans {orphans or 'none'}",
                TRANSPORT[kind],
                "pass" if ok else "FAIL",
            )
            assert adopted.status == "ready"
            assert adopted.container_id == started[kind].container_id, "not adopted"
            assert answer == 1024
        assert orphans == []
        # One network, shared by the http and rpc backends (pipe has none).
        assert networks == {controller.offline_network}
    assert controller.owned() == []
    assert set(controller.owned("network")) <= {controller.offline_network}


# -- the controller killed during a stop ------------------------------------------------

#: When, after the DELETE is sent, the controller is killed: early in the request,
#: while Docker removes the container, and near its end.
STOP_KILL_DELAY = {"pipe": 0.02, "http": 0.15, "rpc": 0.4}


def _delete_and_kill(
    controller: ControllerProcess, backend_id: str, delay: float
) -> str:
    """Send DELETE, kill -9 the controller ``delay`` s later; how the DELETE ended."""
    reply: list[str] = []

    def stop() -> None:
        try:
            with controller.client(timeout=10.0) as other:
                other.stop_backend(backend_id)
            reply.append("returned")
        except Exception as exc:
            reply.append(f"raised {type(exc).__name__}")

    thread = threading.Thread(target=stop, name=f"stop-{backend_id}")
    thread.start()
    time.sleep(delay)
    controller.kill()
    thread.join(30)
    assert not thread.is_alive(), "the DELETE is stuck"
    return reply[0]


def _row_at_kill(controller: ControllerProcess, backend_id: str) -> str:
    """The backend's row as the killed controller left it in its database."""
    with contextlib.closing(
        sqlite3.connect(controller.workdir / "controller.db")
    ) as db:
        found = db.execute(
            "SELECT status, reason FROM backends WHERE id = ?", (backend_id,)
        ).fetchone()
    if found is None:
        return "deleted"
    status, reason = found
    return f"{status} ({reason})" if reason else str(status)


def test_the_controller_killed_during_a_stop_of_each_type(
    api: ControllerClient,
    controller: ControllerProcess,
    environment: str,
) -> None:
    with _backends(api, controller, environment) as backends:
        for kind, backend in backends.items():
            container = backend.container_id or ""
            reply = _delete_and_kill(controller, backend.id, STOP_KILL_DELAY[kind])
            at_kill = _row_at_kill(controller, backend.id)
            survived = container[:12] in controller.owned()
            controller.start()

            # Right after the restart: the stop was finished, or never began.
            orphans = _orphans(api, controller)
            try:
                after = api.backend(backend.id)
                state = f"still listed: {after.status}" + (
                    f" ({after.reason})" if after.reason else ""
                )
            except NotFound:
                after, state = None, "gone"
            left = container[:12] in controller.owned()
            socket_dir = Path(controller.socket_root, backend.id).exists()
            networks = set(controller.owned("network"))
            truthful = (after is None and not left and not socket_dir) or (
                after is not None and after.status == "ready" and left
            )
            ok = truthful and not orphans and networks <= {controller.offline_network}
            text = (
                f"controller kill -9 {STOP_KILL_DELAY[kind]} s into DELETE (reply: "
                f"{reply}; row {at_kill}, container "
                f"{'still there' if survived else 'removed'}), restart: {state}; "
                f"orphans {orphans or 'none'}"
            )
            print(f"\n{kind}: {text}")
            record("faults", text, TRANSPORT[kind], "pass" if ok else "FAIL")
            assert orphans == [], f"{kind}: orphaned containers {orphans}"
            assert truthful, (
                f"{kind}: {state}, container left {left}, socket dir {socket_dir}"
            )
            assert networks <= {controller.offline_network}, f"{kind}: {networks}"
            if after is not None:  # the DELETE never got to it: a second one does
                api.stop_backend(backend.id)
            with pytest.raises(NotFound):
                api.backend(backend.id)
    assert controller.owned() == []
    assert set(controller.owned("network")) <= {controller.offline_network}


# -- the controller killed during a build, while clients use backends -------------------


def test_the_controller_killed_during_a_build_while_backends_serve(
    api: ControllerClient,
    controller: ControllerProcess,
    environment: str,
) -> None:
    with _backends(api, controller, environment) as backends:
        traffic = {
            kind: Traffic(b, sync_clients=1, async_clients=0)
            for kind, b in backends.items()
        }
        with contextlib.ExitStack() as stack:
            for t in traffic.values():
                stack.enter_context(t)
                t.wait_all_succeed(since=0.0)
            began = time.monotonic()
            env = api.create_environment("faults-attrs", requirements=["attrs==25.4.0"])
            assert env.job_id is not None
            deadline = time.monotonic() + 120
            while (job := api.job(env.job_id)).status == "queued":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            status_at_kill = job.status
            controller.kill()
            time.sleep(1.5)  # the clients keep going with no controller at all
            controller.start()
            restarted = time.monotonic()
            for t in traffic.values():
                t.wait_all_succeed(since=restarted)
        # The clients stopped: the build no longer shares the CPUs with them.
        job = api.wait_job(env.job_id, timeout=600)
        log = [line.line for line in api.job_log(env.job_id).lines]
        resumed = "controller restarted: resuming the job" in log
        built = api.environment("faults-attrs")
        errors = {kind: t.errors_since(began) for kind, t in traffic.items()}
        listed = {b.id: b for b in api.backends()}
        print(
            f"\nbuild killed while {status_at_kill}: job {job.status} "
            f"(resumed={resumed}), environment {built.status}; client errors "
            f"{ {k: dict(error_types(v)) for k, v in errors.items()} }"
        )
        for kind, backend in backends.items():
            now = listed[backend.id]
            ok = (
                not errors[kind]
                and job.succeeded
                and resumed
                and built.status == "ready"
                and (now.status, now.restarts) == ("ready", 0)
            )
            record(
                "faults",
                f"controller kill -9 during a build ({status_at_kill}) while a client "
                f"uses the backend: job {job.status}"
                f"{' (resumed)' if resumed else ''}, environment {built.status}; "
                f"client errors {dict(error_types(errors[kind])) or 'none'}",
                TRANSPORT[kind],
                "pass" if ok else "FAIL",
            )
        assert status_at_kill == "running"
        assert job.succeeded, job.error
        assert resumed, log
        assert built.status == "ready"
        assert built.image is not None
        assert errors == {kind: [] for kind in KINDS}, errors
        for backend in backends.values():
            assert (listed[backend.id].status, listed[backend.id].restarts) == (
                "ready",
                0,
            )
        assert _orphans(api, controller) == []
        api.delete_environment("faults-attrs")
    assert controller.owned() == []
