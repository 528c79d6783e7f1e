"""Relays made ahead (engine/relay_pool.py): after a cold start of an http or rpc
backend without network, the next one's relay is made; a start of the same kind takes
it (its backend id and port) and makes only its backend; anything else makes its own.
Members hold their ports, go back when a start is refused after its plan, and are
removed at shutdown and by the next process's tidy. Pure logic against an in-memory
engine (the real engine: tests/e2e/test_relay_pool.py). Their outcomes are counted
(``relay_counts``, the controller's ``beephost_controller_relays_ahead_total``)."""

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from beephost_controller.backends import BackendRequest, BackendService
from beephost_controller.engine.docker_backends import DockerBackends
from beephost_controller.engine.docker_plan import LABEL_RELAY_FOR, relay_name
from beephost_controller.engine.relay_pool import (
    KEYS,
    LABEL_RELAY_AHEAD,
    relay_key,
    until_exists,
)
from beephost_controller.schemas import BackendLimits
from beephost_controller.starts import Minted
from beephost_controller.testing import MemoryContainers
from tests.unit.controller.support import (
    backend_service,
    ready_environment,
    stop_all_backends,
)


def _service(tmp_path: Path, engine: MemoryContainers, size: int = 1) -> BackendService:
    return backend_service(tmp_path, containers=engine, settings={"relay_pool": size})


def _members(engine: MemoryContainers) -> dict[str, str]:
    """Relays made ahead that no start took (no container of their backend):
    container name -> the backend id each waits for."""
    return {
        name: state.labels[LABEL_RELAY_FOR]
        for name, state in engine.containers.items()
        if LABEL_RELAY_AHEAD in state.labels
        and name.removesuffix("-relay") not in engine.containers
    }


def _counts(**outcomes: int) -> dict[str, int]:
    return {"made": 0, "taken": 0, "missed": 0, "discarded": 0, **outcomes}


def _docker(service: BackendService) -> DockerBackends:
    engine = service.engine
    assert isinstance(engine, DockerBackends)
    return engine


def test_a_start_takes_the_relay_made_after_the_last_one(tmp_path: Path) -> None:
    engine = MemoryContainers()
    service = _service(tmp_path, engine)
    first = service.start(BackendRequest(environment="e", type="http"))
    # The first start made its own relay, then the next one's: started, on a port
    # of its own, its socket directory made.
    ((member, waits_for),) = _members(engine).items()
    assert member == relay_name(f"beephost-default-{waits_for}")
    assert engine.containers[member].status == "running"
    assert (tmp_path / "sock" / waits_for).is_dir()
    (published,) = engine.specs[member].ports.values()
    assert published[1] not in (None, first.config.port)
    docker = _docker(service)
    assert docker.relay_counts() == _counts(made=1, missed=1)

    engine.starts.clear()
    second = service.start(BackendRequest(environment="e", type="http"))
    assert second.id == waits_for, "the member's backend id"
    assert second.config.port == published[1], "its relay's port"
    # Only the backend was started; then another member was made ahead.
    assert engine.starts[0] == second.container_name
    assert relay_name(second.container_name) == member
    ((next_member, next_id),) = _members(engine).items()
    assert next_member != member
    assert next_id not in (first.id, second.id)
    assert engine.starts == [second.container_name, next_member]
    assert docker.relay_counts() == _counts(made=2, taken=1, missed=1)


def test_only_a_start_needing_the_same_relay_takes_it(tmp_path: Path) -> None:
    engine = MemoryContainers()
    service = _service(tmp_path, engine)
    service.start(BackendRequest(environment="e", type="http"))
    (waiting_id,) = _members(engine).values()
    # Another kind, other limits, a port of its own, a backend with network or a
    # pipe: each makes its own relay (or none) and leaves the member waiting.
    others = [
        BackendRequest(environment="e", type="rpc"),
        BackendRequest(environment="e", type="http", limits=BackendLimits(cpus=0.5)),
        BackendRequest(environment="e", type="http", port=24555),
        BackendRequest(environment="e", type="pipe"),
    ]
    for request in others:
        row = service.start(request)
        assert row.id != waiting_id
    assert waiting_id in _members(engine).values()
    # Misses: the first start, the rpc and the other limits (a port asked for takes
    # none, a pipe has no relay); each relayed kind got its member made.
    assert _docker(service).relay_counts() == _counts(made=3, missed=3)


def test_member_ports_are_never_picked_for_another_start(tmp_path: Path) -> None:
    engine = MemoryContainers()
    service = _service(tmp_path, engine)
    service.start(BackendRequest(environment="e", type="http"))
    (member,) = _members(engine)
    ((_, port),) = engine.specs[member].ports.values()
    assert port is not None
    docker = _docker(service)
    picks = {docker.pick_port("127.0.0.1", set()) for _ in range(20)}
    assert port not in picks


def test_a_start_refused_after_its_plan_gives_its_member_back(tmp_path: Path) -> None:
    engine = MemoryContainers()
    service = _service(tmp_path, engine)
    service.start(BackendRequest(environment="e", type="http"))
    ((member, waits_for),) = _members(engine).items()
    docker = _docker(service)
    request = BackendRequest(environment="e", type="http")
    env = service.store.existing_environment("e")
    planned = docker.plan(request, env, Minted.draw(request, 0, 0), {})
    assert planned.row.id == waits_for, "planning took the member"
    docker.release(planned)
    assert member not in engine.containers
    assert not (tmp_path / "sock" / waits_for).exists()
    assert docker.relay_counts() == _counts(made=1, taken=1, missed=1, discarded=1)


def test_without_a_pool_no_relay_is_made_ahead_nor_counted(tmp_path: Path) -> None:
    engine = MemoryContainers()
    service = _service(tmp_path, engine, size=0)
    for _ in range(2):
        service.start(BackendRequest(environment="e", type="http"))
    assert not _members(engine)
    assert all(LABEL_RELAY_AHEAD not in s.labels for s in engine.containers.values())
    assert _docker(service).relay_counts() == _counts()


def test_keys_beyond_the_last_few_lose_their_members(tmp_path: Path) -> None:
    engine = MemoryContainers()
    service = _service(tmp_path, engine)
    shares = [0.25 * (n + 1) for n in range(KEYS + 1)]
    for cpus in shares:
        limits = BackendLimits(cpus=cpus)
        service.start(BackendRequest(environment="e", type="http", limits=limits))
    kept = {engine.specs[name].cpus for name in _members(engine)}
    assert kept == set(shares[1:]), "the least recently wanted went"


def test_members_go_at_shutdown_and_with_the_next_process_tidy(
    tmp_path: Path,
) -> None:
    engine = MemoryContainers()
    service = _service(tmp_path, engine, size=2)
    service.start(BackendRequest(environment="e", type="rpc"))
    assert len(_members(engine)) == 2
    # A process that died left them: the next one's reconciliation removes them,
    # with their socket directories, and counts no orphan.
    again = _service(tmp_path, engine)
    waiting = list(_members(engine).values())
    counts = again.reconcile()
    assert counts["orphan_removed"] == 0
    assert _members(engine) == {}
    assert not any((tmp_path / "sock" / b).exists() for b in waiting)
    # A clean shutdown removes this process's own.
    again.start(BackendRequest(environment="e", type="rpc"))
    assert len(_members(engine)) == 1
    assert _docker(again).settle(1.0)
    assert _members(engine) == {}


def test_the_next_relay_is_made_once_the_launched_backend_listens(
    tmp_path: Path,
) -> None:
    engine = MemoryContainers()
    deferred: list[Callable[[], None]] = []
    service = backend_service(
        tmp_path,
        containers=engine,
        settings={"relay_pool": 1},
        spawn=deferred.append,
    )
    row = service.start(BackendRequest(environment="e", type="rpc"))
    docker = _docker(service)
    docker.boot_wait = 5.0
    socket = tmp_path / "sock" / row.id / "rpc.sock"
    # The refill spawned by the start only makes its relay once the server's socket
    # exists: here the fake engine runs no server, so the test makes it, later.
    refill = deferred.pop()
    threading.Timer(0.3, socket.touch).start()
    began = time.monotonic()
    refill()
    waited = time.monotonic() - began
    assert len(_members(engine)) == 1
    assert 0.25 < waited < 5.0, "waited for the socket, not for the timeout"


def test_until_exists_gives_up_after_its_timeout(tmp_path: Path) -> None:
    began = time.monotonic()
    until_exists(tmp_path / "never", 0.2)
    assert 0.2 <= time.monotonic() - began < 2.0


def test_code_volumes_do_not_tell_two_relays_apart(tmp_path: Path) -> None:
    # An image's first starts run without its code volumes while they are copied; a
    # relay made then still serves the starts that mount them.
    engine = MemoryContainers()
    service = _service(tmp_path, engine)
    service.start(BackendRequest(environment="e", type="http"))
    (member,) = _members(engine)
    spec = engine.specs[member]
    with_volumes = replace(spec, shared_volumes={"code-usr": "/usr"})
    assert relay_key(with_volumes) == relay_key(spec)
    assert relay_key(replace(spec, cpus=spec.cpus / 2)) != relay_key(spec)


def test_members_of_an_image_no_environment_uses_go(tmp_path: Path) -> None:
    engine = MemoryContainers()
    service = _service(tmp_path, engine)
    service.start(BackendRequest(environment="e", type="http"))
    ((member, waits_for),) = _members(engine).items()
    docker = _docker(service)
    docker.release_images({engine.specs[member].image})
    assert member in engine.containers, "its image is still used"
    docker.release_images(set())
    assert member not in engine.containers
    assert not (tmp_path / "sock" / waits_for).exists()


class _SlowAhead(MemoryContainers):
    """Starts of relays made ahead wait for ``go``."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()
        self.making = threading.Event()

    def start_container(self, ref: str) -> None:
        name = self._find(ref)
        if name is not None and LABEL_RELAY_AHEAD in self.specs[name].labels:
            self.making.set()
            assert self.go.wait(10)
        super().start_container(ref)


def _code_volumes(engine: MemoryContainers) -> list[str]:
    return [name for name in engine.volumes if "-code-" in name]


def _threads(work: Callable[[], None]) -> None:
    threading.Thread(target=work, daemon=True).start()


def test_a_relay_being_made_goes_before_its_image_s_code_volumes(
    tmp_path: Path,
) -> None:
    engine = _SlowAhead()  # it refuses to remove a volume in use, as Docker
    engine.images["img:1"] = "sha256:" + "1" * 64
    service = backend_service(
        tmp_path,
        containers=engine,
        environments=[ready_environment(image="img:1")],
        settings={"relay_pool": 1, "code_volumes": "on"},
        spawn=_threads,
    )
    engine.go.set()
    service.start(BackendRequest(environment="e", type="http"))
    deadline = time.monotonic() + 10
    while len(_code_volumes(engine)) < 3 or not _members(engine):
        assert time.monotonic() < deadline, "code volumes filled, a relay made ahead"
        time.sleep(0.01)
    # The next start takes that relay; the one made after it mounts the code volumes,
    # and its start is held while the environment's image goes.
    engine.go.clear()
    engine.making.clear()
    service.start(BackendRequest(environment="e", type="http"))
    assert engine.making.wait(10), "the next relay is being made"
    (member,) = _members(engine)
    assert engine.specs[member].shared_volumes, "it mounts the code volumes"
    docker = _docker(service)
    stop_all_backends(service)
    threading.Timer(0.3, engine.go.set).start()
    began = time.monotonic()
    docker.release_images(set())
    assert time.monotonic() - began >= 0.25, "it waited for the relay being made"
    assert member not in engine.containers
    assert _code_volumes(engine) == [], "no relay held them"
    assert docker.relay_counts() == _counts(made=2, taken=1, missed=1, discarded=1)


def _relay_being_made(tmp_path: Path) -> tuple[_SlowAhead, BackendService, str]:
    """A pool of one whose refill, after a start took nothing, is being made (its
    start held until ``go``): the engine, the service, and that relay's name."""
    engine = _SlowAhead()
    service = backend_service(
        tmp_path, containers=engine, settings={"relay_pool": 1}, spawn=_threads
    )
    service.start(BackendRequest(environment="e", type="http"))
    assert engine.making.wait(10), "the next relay is being made"
    (member,) = _members(engine)
    return engine, service, member


def test_shutdown_removes_the_relay_being_made(tmp_path: Path) -> None:
    engine, service, member = _relay_being_made(tmp_path)
    threading.Timer(0.3, engine.go.set).start()
    assert _docker(service).settle(5.0)
    assert member not in engine.containers, "settle waited for it, then removed it"


def test_settle_waits_for_a_relay_being_made_no_longer_than_told(
    tmp_path: Path,
) -> None:
    engine, service, member = _relay_being_made(tmp_path)
    began = time.monotonic()
    assert not _docker(service).settle(0.2), "a relay is still being made"
    assert time.monotonic() - began < 5, "bounded by its timeout, not GONE_WAIT"
    engine.go.set()
    deadline = time.monotonic() + 10
    while member in engine.containers:
        assert time.monotonic() < deadline, "its maker removes it: the pool is closed"
        time.sleep(0.01)


def test_a_start_waits_for_the_relay_being_made_for_it(tmp_path: Path) -> None:
    engine, service, member = _relay_being_made(tmp_path)
    waits_for = _members(engine)[member]
    threading.Timer(0.2, engine.go.set).start()
    second = service.start(BackendRequest(environment="e", type="http"))
    assert second.id == waits_for, "it took the relay once made, not one of its own"


def test_a_port_taken_meanwhile_is_replaced_for_a_relay_made_ahead(
    tmp_path: Path,
) -> None:
    engine = MemoryContainers()
    service = _service(tmp_path, engine)
    pool = _docker(service).relays
    first_pick = pool._pick_port
    picks: list[int] = []

    def pick(host: str, taken: set[int]) -> int:
        port = first_pick(host, taken)
        picks.append(port)
        if len(picks) == 1:  # something else binds it before the relay starts
            engine.ports_in_use.add(port)
        return port

    pool._pick_port = pick
    service.start(BackendRequest(environment="e", type="http"))
    ((member, _),) = _members(engine).items()
    assert len(picks) == 2
    assert picks[0] != picks[1]
    ((_, port),) = engine.specs[member].ports.values()
    assert port == picks[1]
    ahead = [n for n, s in engine.containers.items() if LABEL_RELAY_AHEAD in s.labels]
    assert ahead == [member], "the relay on the taken port was removed"
    assert _docker(service).relay_counts() == _counts(made=1, missed=1)
