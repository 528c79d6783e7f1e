"""The controller on the real engine: environments from PyPI, backends of every type,
crashes of backends and of the controller itself.

One real ``beephost-controller`` process (tests/e2e/controller_process.py) builds
into the session's test repositories; its containers carry its unique name, and
every test checks that nothing it cannot account for is left behind.
"""

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from beephost_client.controller import Backend, ControllerClient
from beephost_protocol.errors import NotFound, SessionLost, Unavailable
from tests.e2e.containers import (
    docker,
    host_addresses,
    inspect,
    kill_main_process,
    label_args,
)
from tests.e2e.controller_process import (
    CONTROLLER_LABEL,
    ON_BOTH,
    ControllerProcess,
    ControllerTarget,
    beep_host,
    build_environment,
    stopped_after,
    wait_restarted,
)
from tests.e2e.session_fixtures import BACKENDS_REPOSITORY

pytestmark = pytest.mark.docker

REQUIREMENTS = ["six==1.17.0"]


@pytest.fixture(scope="module")
def environment(api: ControllerClient) -> str:
    """An environment with a real PyPI requirement, built once for the module."""
    build_environment(api, "pkgs", REQUIREMENTS, timeout=600)
    assert api.environment("pkgs").status == "ready"
    return "pkgs"


def _start_ready(api: ControllerClient, env: str, kind: str, **kw: object) -> Backend:
    started = api.start_backend(env, kind, **kw)  # type: ignore[arg-type]
    # The reply does not wait for the server, but reports what the controller's probe
    # found: a server up before a slow engine answered the start is ready already
    # (seen in CI while the engine copied an image into code volumes).
    assert started.status in ("starting", "ready")
    assert started.token, "the start reply carries the token"
    return api.wait_backend(started.id, timeout=60)


@contextmanager
def _ready_backend(
    api: ControllerClient, env: str, kind: str, **kw: object
) -> Iterator[Backend]:
    """A :func:`_start_ready` backend for the block; stopped when it ends."""
    backend = _start_ready(api, env, kind, **kw)
    with stopped_after(api, backend):
        yield backend


@pytest.mark.parametrize("kind", ["pipe", "http", "rpc"])
def test_each_backend_type_serves_the_environment(
    api: ControllerClient,
    controller: ControllerProcess,
    environment: str,
    docker_cli: str,
    kind: str,
) -> None:
    with _ready_backend(api, environment, kind) as backend:
        assert backend.status == "ready"
        assert backend.endpoint is not None
        assert backend.endpoint.startswith(
            {
                "pipe": "unix://",
                "http": "http://127.0.0.1:",
                "rpc": "grpc://127.0.0.1:",
            }[kind]
        )
        assert backend.token is None, "only the start reply carries the token"
        with api.connect_backend(backend.id) as client:
            assert client.evaluate("__import__('six').__version__") == "1.17.0"
            # The environment it serves, by name (an outside test saw ``local``).
            assert client.info().environment == environment
            with client.session() as session:
                session.execute("import six\nitems = list(six.moves.range(3))")
                assert session.evaluate("items") == [0, 1, 2]
                remote = session.create("collections.Counter", "abca")
                assert remote.most_common(1) == [("a", 2)]
        # The container is hardened as the issue asks.
        info = inspect(docker_cli, backend.container_id or "")
        host = info["HostConfig"]
        assert info["Config"]["User"] == "10001:10001"
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["ReadonlyRootfs"] is True
        assert host["PidsLimit"] == 256
        assert host["Memory"] == 512 << 20
        assert host["NanoCpus"] == 1_000_000_000
        assert not any("docker.sock" in b for b in host.get("Binds") or [])
        # Docker's own check, one Python process per run: every 5 s, not 2.
        assert info["Config"]["Healthcheck"]["Interval"] == 5_000_000_000
        labels = info["Config"]["Labels"]
        assert labels[CONTROLLER_LABEL] == controller.name
        assert labels["io.beephost.environment"] == environment
        assert labels["io.beephost.backend"] == backend.id
        # Without network: none at all; an http or rpc backend's relay publishes
        # its port, on loopback only, hardened like it.
        assert host["NetworkMode"] == "none"
        if kind != "pipe":
            relay = inspect(docker_cli, f"{info['Name'].lstrip('/')}-relay")
            bindings = [
                b for v in relay["HostConfig"]["PortBindings"].values() for b in v
            ]
            assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}
            assert relay["Config"]["Labels"]["io.beephost.relay-for"] == backend.id
            assert relay["HostConfig"]["CapDrop"] == ["ALL"]
            assert relay["HostConfig"]["ReadonlyRootfs"] is True
            assert relay["Config"]["User"] == "10001:10001"
        logs = api.backend_logs(backend.id, tail=50)
        assert "listening" in logs.lower()
        # Its default session's worker booted beside its settings (issue 33).
        assert "was started early" in logs, logs
    with pytest.raises(NotFound):
        api.backend(backend.id)
    assert backend.container_id is not None
    assert backend.container_id[:12] not in controller.owned()


def test_no_network_means_no_network(api: ControllerClient, environment: str) -> None:
    with (
        _ready_backend(api, environment, "http") as backend,
        api.connect_backend(backend.id) as client,
    ):
        reply = client.execute(
            "import socket\n"
            "s = socket.socket(); s.settimeout(3)\n"
            "try:\n"
            "    s.connect(('1.1.1.1', 80)); print('connected')\n"
            "except OSError as exc:\n"
            "    print('refused', type(exc).__name__)\n"
        )
        assert "refused" in reply.stdout, reply.stdout


@ON_BOTH
@pytest.mark.parametrize("kind", ["http", "rpc"])
def test_an_offline_backend_reaches_nothing_but_its_own_server(
    api: ControllerClient,
    controller_target: ControllerTarget,
    environment: str,
    docker_cli: str,
    kind: str,
) -> None:
    # A service on every host address (as an outside test found one): no offline
    # backend may reach it, through a gateway or the host's own address, nor another
    # backend's server or relay; its own server answers, inside, and its port outside.
    listener = socket.create_server(("0.0.0.0", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    other = _start_ready(api, environment, "http" if kind == "rpc" else "rpc")
    target = _start_ready(api, environment, kind)
    with listener, stopped_after(api, other, target):
        relays = [
            inspect(docker_cli, f"beephost-{controller_target.name}-{b.id}-relay")
            for b in (other, target)
        ]
        relay_ips = [
            net["IPAddress"]
            for relay in relays
            for net in relay["NetworkSettings"]["Networks"].values()
        ]
        assert all(relay_ips), "each relay is on the offline bridge"
        places = [(a, port) for a in host_addresses()] + [
            (ip, p) for ip in relay_ips for p in (5678, 50051)
        ]
        assert len(places) >= 4
        own = 5678 if kind == "http" else 50051
        with api.connect_backend(target.id) as client:
            reply = client.execute(
                "import socket\n"
                "def reach(address, port):\n"
                "    try:\n"
                "        socket.create_connection((address, port), timeout=2).close()\n"
                "    except OSError as exc:\n"
                "        return type(exc).__name__\n"
                "    return 'connected'\n"
                f"print(reach('127.0.0.1', {own}))\n"  # its own server: the control
                f"for address, port in {places!r}:\n"
                "    print(address, port, reach(address, port))\n",
                timeout=120,
            )
        first, *rest = reply.stdout.splitlines()
        assert first == "connected", reply.stdout
        assert len(rest) == len(places)
        assert not [line for line in rest if line.endswith("connected")], reply.stdout
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing ever arrived
        # Each one's published port still answers from the host, through its relay.
        for backend in (other, target):
            with api.connect_backend(backend.id) as client:
                assert client.evaluate("6 * 7") == 42
    for backend in (other, target):
        assert (
            docker(
                docker_cli, "ps", "-aq", "--filter", f"name={backend.id}", check=False
            ).split()
            == []
        ), "the relay goes with its backend"


def test_equal_requirements_share_one_image(
    api: ControllerClient, environment: str
) -> None:
    first = api.environment(environment)
    twin = api.create_environment("pkgs-twin", requirements=REQUIREMENTS)
    assert twin.job_id is not None
    started = time.monotonic()
    job = api.wait_job(twin.job_id, timeout=120)
    seconds = time.monotonic() - started
    assert job.succeeded, job.error
    assert api.environment("pkgs-twin").image == first.image
    log = [line.line for line in api.job_log(twin.job_id).lines]
    assert any("nothing to build" in line for line in log), log
    print(f"\nre-create with equal requirements: {seconds:.2f} s")
    api.delete_environment("pkgs-twin")


def test_a_killed_backend_is_reported_and_restarted(
    api: ControllerClient, environment: str, docker_cli: str
) -> None:
    with _ready_backend(api, environment, "http") as backend:
        endpoint = backend.endpoint
        docker(docker_cli, "kill", backend.container_id or "")
        # Docker treats `docker kill` as deliberate: the controller's policy restarts it.
        now = wait_restarted(api, backend.id)
        assert now.last_exit == "crashed"
        assert now.exit_code == 137
        assert now.endpoint == endpoint, "a restart keeps the published port"
        with api.connect_backend(backend.id) as client:
            assert client.evaluate("6 * 7") == 42


def test_a_crashed_server_process_is_restarted_by_docker(
    api: ControllerClient, environment: str, docker_cli: str
) -> None:
    with _ready_backend(api, environment, "pipe") as backend:
        kill_main_process(docker_cli, backend.container_id or "")
        now = wait_restarted(api, backend.id)
        # Docker restarted it at once and reset the exit code: crashed, code unknown
        # (137 when the controller saw the exit before the restart).
        assert now.last_exit == "crashed"
        assert now.exit_code in (None, 137)
        with api.connect_backend(backend.id) as client:
            assert client.evaluate("1 + 1") == 2


def test_a_worker_over_the_memory_limit_loses_its_session_only(
    api: ControllerClient, environment: str
) -> None:
    with _ready_backend(
        api, environment, "pipe", limits={"memory_mb": 128, "pids": 64}
    ) as backend:
        with api.connect_backend(backend.id) as client:
            with pytest.raises(SessionLost):
                client.execute(
                    "x = bytearray(600 << 20); x[::4096] = b'1' * len(x[::4096])"
                )
            assert client.evaluate("1 + 1") == 2, "a new session works"
        now = api.backend(backend.id)
        assert (now.status, now.restarts) == ("ready", 0), "the server stayed up"


def test_controller_killed_during_a_start_adopts_and_leaves_no_orphan(
    api: ControllerClient,
    controller: ControllerProcess,
    environment: str,
    docker_cli: str,
) -> None:
    started = api.start_backend(environment, "rpc")
    controller.kill()  # the backend is still starting
    # While it is down: an orphan with its labels (a container whose row never
    # committed) and a backend whose container someone removed.
    orphan = docker(
        docker_cli,
        "create",
        *label_args(
            {
                CONTROLLER_LABEL: controller.name,
                "io.beephost.managed": "true",
                "io.beephost.backend": "b-never-recorded",
            }
        ),
        f"{BACKENDS_REPOSITORY}/python:3.11",
        "true",
    ).strip()
    controller.start()
    try:
        adopted = api.wait_backend(started.id, timeout=60)
        assert adopted.status == "ready"
        with api.connect_backend(started.id) as client:
            assert client.evaluate("2 ** 10") == 1024
        assert orphan[:12] not in controller.owned(), "the orphan was removed"
        ids = {b.id for b in api.backends()}
        owned = controller.owned("backend")
        assert len(owned) == len(ids), (owned, ids)
        metrics = api.metrics()
        assert 'beephost_controller_reconciliations_total{action="orphan_removed"}' in (
            metrics
        )
    finally:
        api.stop_backend(started.id)
        docker(docker_cli, "rm", "-f", "-v", orphan, check=False)


def test_a_relay_a_crash_left_off_its_network_joins_it_at_reconcile(
    api: ControllerClient,
    controller: ControllerProcess,
    environment: str,
    docker_cli: str,
) -> None:
    backend = _start_ready(api, environment, "http")
    # Its relay is on the network (the backend has none): it publishes the port.
    container = f"beephost-{controller.name}-{backend.id}-relay"
    network = controller.offline_network
    assert network in inspect(docker_cli, container)["NetworkSettings"]["Networks"]
    controller.kill()
    # A start cut short between the relay's start and its network join (the join
    # follows the start, so the engine sets the network up during the boot).
    docker(docker_cli, "network", "disconnect", network, container)
    controller.start()
    with stopped_after(api, backend):
        assert network in inspect(docker_cli, container)["NetworkSettings"]["Networks"]
        adopted = api.wait_backend(backend.id, timeout=60)
        assert adopted.endpoint == backend.endpoint
        with api.connect_backend(backend.id) as client:
            assert client.evaluate("2 ** 10") == 1024
        assert "could not join" not in controller.log()


def test_a_vanished_container_is_marked_missing(
    api: ControllerClient,
    controller: ControllerProcess,
    environment: str,
    docker_cli: str,
) -> None:
    backend = _start_ready(api, environment, "pipe")
    controller.kill()
    docker(docker_cli, "rm", "-f", "-v", backend.container_id or "")
    controller.start()
    with stopped_after(api, backend):
        now = api.backend(backend.id)
        assert (now.status, now.reason) == ("exited", "missing")
        with pytest.raises(Unavailable):
            api.wait_backend(backend.id, timeout=5)


def test_a_backend_is_stopped_when_its_lifetime_ends(
    api: ControllerClient, environment: str, docker_cli: str
) -> None:
    backend = _start_ready(api, environment, "http", ttl=3)
    assert backend.ttl == 3
    assert backend.expires_at == pytest.approx(backend.created_at + 3)
    with stopped_after(api, backend):
        deadline = time.monotonic() + 30
        now = _wait_stopped(api, backend.id, within=30)
        assert now.reason == "expired"
        assert time.time() >= backend.created_at + 3
        assert backend.container_id
        found = f"id={backend.container_id}"
        # The stop is recorded first, then the container removed: it goes soon after.
        while docker(docker_cli, "ps", "-a", "-q", "--filter", found).strip():
            assert time.monotonic() < deadline, "its container was not removed"
            time.sleep(0.2)
        with pytest.raises(Unavailable):
            api.wait_backend(backend.id, timeout=1)
    with pytest.raises(NotFound):
        api.backend(backend.id)


def _wait_stopped(api: ControllerClient, backend_id: str, within: float) -> Backend:
    deadline = time.monotonic() + within
    while (now := api.backend(backend_id)).status != "stopped":
        assert time.monotonic() < deadline, f"still {now.status}"
        time.sleep(0.2)
    return now


def test_an_idle_backends_logs_are_kept_at_its_stop(
    api: ControllerClient, environment: str, docker_cli: str
) -> None:
    backend = _start_ready(api, environment, "http", idle_timeout=3)
    token = api.backend_connection(backend.id).token
    with stopped_after(api, backend):
        # The engine writes a container's output to its log a moment after it.
        deadline = time.monotonic() + 10
        while "listening" not in (live := api.backend_logs(backend.id)).lower():
            assert time.monotonic() < deadline, f"the server logs its start: {live!r}"
            time.sleep(0.1)
        stopped = _wait_stopped(api, backend.id, within=30)
        assert stopped.reason == "idle"
        # Recorded stopped first, then removed (a crash between the two finishes it).
        found = f"id={stopped.container_id}"
        deadline = time.monotonic() + 30
        while docker(docker_cli, "ps", "-a", "-q", "--filter", found).strip():
            assert time.monotonic() < deadline, "its container was not removed"
            time.sleep(0.2)
        # The container is gone on purpose: its tail, kept at the stop, never a 503.
        kept = api.backend_logs(backend.id)
        note, _, text = kept.partition("\n")
        assert note.startswith(f"[beep-host] backend {backend.id} was stopped (idle)")
        assert live.splitlines()[0] in text, "the start's first line, as it was"
        assert token
        assert token not in kept


def test_an_idle_backend_is_stopped_and_a_kept_alive_one_is_not(
    api: ControllerClient, environment: str
) -> None:
    idle = _start_ready(api, environment, "pipe", idle_timeout=3)
    kept = _start_ready(api, environment, "http", idle_timeout=3)
    assert (idle.idle_timeout, kept.idle_timeout) == (3, 3)
    with stopped_after(api, idle, kept):
        with api.connect_backend(kept.id) as client:
            # Health checks every 5 s, the report every 1 s, a sweep every 0.5 s:
            # the idle one goes within about 3 + 5 + 1 + 0.5 s; the other stays.
            deadline = time.monotonic() + 30
            while api.backend(idle.id).status != "stopped":
                assert time.monotonic() < deadline, "the idle backend was not stopped"
                client.keep_alive()
                time.sleep(0.5)
            assert api.backend(idle.id).reason == "idle"
            for _ in range(12):  # 6 s more: twice its idle timeout
                client.keep_alive()
                time.sleep(0.5)
            assert api.backend(kept.id).status == "ready", "kept alive"
        assert _wait_stopped(api, kept.id, within=30).reason == "idle"


def _build_containers(controller: ControllerProcess) -> list[str]:
    """Ids of the controller's environment-build (install) containers (they carry the
    image owner's label: the controller's name)."""
    return docker(
        controller.docker_cli,
        "ps",
        "-aq",
        "--filter",
        f"label=io.beephost.image.owner={controller.name}",
        "--filter",
        "label=io.beephost.kind=environment-build",
    ).split()


def test_controller_killed_during_a_build_resumes_it(
    api: ControllerClient, controller: ControllerProcess
) -> None:
    env = api.create_environment("pkgs-attrs", requirements=["attrs==25.4.0"])
    assert env.job_id is not None
    # Killed while the install's container exists: what a kill during a build leaves.
    deadline = time.monotonic() + 600
    while not (left := _build_containers(controller)):
        assert api.job(env.job_id).status in ("queued", "running")
        assert time.monotonic() < deadline, "no install container appeared"
        time.sleep(0.05)
    controller.kill()
    assert set(left) <= set(_build_containers(controller)), "left by the kill"
    controller.start()
    # Removed at the start, before the job resumed (which may run a new one).
    assert not set(left) & set(_build_containers(controller)), "a leftover stayed"
    job = api.wait_job(env.job_id, timeout=600)
    assert job.succeeded, job.error
    ready = api.environment("pkgs-attrs")
    assert ready.status == "ready"
    assert ready.image is not None
    log = [line.line for line in api.job_log(env.job_id).lines]
    assert "controller restarted: resuming the job" in log
    assert controller.owned("sandbox") == [], "a build leaves no container behind"
    api.delete_environment("pkgs-attrs")


def test_state_survives_a_clean_restart(
    api: ControllerClient, controller: ControllerProcess, environment: str
) -> None:
    with _ready_backend(api, environment, "http") as backend:
        controller.stop()
        controller.start()
        assert api.environment(environment).status == "ready"
        assert api.backend(backend.id).status in ("ready", "starting")
        assert api.wait_backend(backend.id, timeout=30).status == "ready"
        with api.connect_backend(backend.id) as client:
            assert client.evaluate("'still here'") == "still here"


def test_config_and_bad_input(api: ControllerClient, environment: str) -> None:
    config = api.config()
    assert config["name"].startswith("e2e-")
    assert "token" not in config
    assert config["token_set"] is False
    with pytest.raises(NotFound):
        api.start_backend("no-such-env", "pipe")
    with pytest.raises(NotFound):
        api.stop_backend("b-000000000000")
    # No secret-named setting but SECRETS_DIR (a directory, not a secret); the
    # stored secrets' values are never in any reply.
    assert [key for key in config if "secret" in key.lower()] == ["secrets_dir"]


#: User code behind the egress proxy: a name off the list, through the proxy variables.
_OFF_THE_LIST = """
import urllib.request
try:
    urllib.request.urlopen("http://other.test/", timeout=20)
    outcome = "reached"
except Exception as exc:
    outcome = str(exc)
"""


def test_an_allow_list_backend_runs_behind_the_egress_proxy(
    api: ControllerClient, controller_target: ControllerTarget
) -> None:
    # No network of its own: loopback only; its way out is the controller's proxy,
    # which refuses what the list does not hold and says why.
    policy = {"allow": [{"host": "api.example.com"}]}
    # The build of an allow-list environment makes the proxy's image too (minutes,
    # cold), so that its start does not wait for it.
    created = api.create_environment(
        "allowlisted", requirements=REQUIREMENTS, egress=policy
    )
    assert created.job_id is not None
    job = api.wait_job(created.job_id, timeout=900)
    assert job.succeeded
    lines = [line.line for line in api.job_log(created.job_id, limit=10000).lines]
    egress = [line for line in lines if "egress proxy" in line]
    assert any(line.startswith("egress proxy image ") for line in egress), egress
    started = api.start_backend("allowlisted", "pipe")
    with stopped_after(api, started):
        backend = api.wait_backend(started.id, timeout=600)
        assert backend.egress.mode == "allow_list"
        with api.connect_backend(backend.id) as client:
            client.execute(_OFF_THE_LIST)
            assert "403" in client.evaluate("outcome")
            assert client.evaluate(
                "[name for _, name in __import__('socket').if_nameindex()]"
            ) == ["lo"]
            assert client.evaluate(
                "__import__('os').environ['HTTP_PROXY'].endswith('@127.0.0.1:3128')"
            )
        refusals = api.egress_refusals(backend.id)
        assert refusals[-1].destination == "other.test:80"
        assert "other.test" in refusals[-1].reason
        # What a user sees: the CLI's status of the backend names the refusal.
        status = beep_host(controller_target, "status", backend.id)
        assert status.returncode == 0, status.stderr
        assert "egress refusals (last" in status.stdout
        assert "other.test:80: " in status.stdout


def test_admin_backend_drives_the_controller_and_others_cannot(
    api: ControllerClient, environment: str
) -> None:
    admin = api.admin_environment()
    if admin.status != "ready":
        assert admin.job_id is not None
        assert api.wait_job(admin.job_id, timeout=600).succeeded
    inside = _start_ready(api, "admin", "pipe")
    plain = _start_ready(api, environment, "pipe")
    with stopped_after(api, inside, plain):
        with api.connect_backend(inside.id) as client:
            names = client.evaluate(
                "sorted(e.name for e in "
                "__import__('beephost_client').ControllerClient().environments())"
            )
            assert "admin" in names
            assert environment in names
            # It can start (and stop) a backend of another environment.
            started_id = client.evaluate(
                "__import__('beephost_client').ControllerClient()"
                f".start_backend({environment!r}, 'http').id"
            )
        assert api.wait_backend(started_id, timeout=60).status == "ready"
        api.stop_backend(started_id)
        with api.connect_backend(plain.id) as client:
            seen = client.evaluate(
                "(sorted(k for k in __import__('os').environ if 'CONTROLLER' in k), "
                "__import__('os').path.exists('/run/beephost-controller'))"
            )
        assert seen == ([], False), "no other environment gets controller access"
