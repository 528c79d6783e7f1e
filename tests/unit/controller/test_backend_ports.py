"""BackendService's host ports: one concrete port per backend, kept in its row and
across restarts; a requested port that is taken is a conflict naming it; a chosen one
that was taken meanwhile is replaced. Pure logic against an in-memory engine (the
real engine: tests/e2e/test_backend_ports.py)."""

from pathlib import Path

import pytest

from beephost_controller.backends import BackendRequest, BackendService
from beephost_controller.engine.docker_plan import PORT_ATTEMPTS, relay_name
from beephost_controller.engine.host_ports import HOST_PORTS
from beephost_controller.testing import MemoryContainers
from beephost_protocol.errors import Conflict
from tests.unit.controller.support import backend_service, docker_engine


def _service(
    tmp_path: Path, engine: MemoryContainers, *, probe: bool
) -> BackendService:
    return backend_service(
        tmp_path, containers=engine, settings={"choose_host_ports": probe}
    )


@pytest.mark.parametrize("probe", [True, False], ids=["host", "in-container"])
def test_the_chosen_port_is_published_stored_and_kept_on_restart(
    tmp_path: Path, probe: bool
) -> None:
    engine = MemoryContainers()
    service = _service(tmp_path, engine, probe=probe)
    row = service.start(BackendRequest(environment="e", type="rpc"))
    # Without network, its relay publishes the port (the backend has no network).
    (published,) = engine.specs[relay_name(row.container_name)].ports.values()
    port = published[1]
    assert port is not None, "a concrete port: the engine's pick moves on restart"
    assert probe or port in HOST_PORTS
    assert service.get_row(row.id).config.port == port
    engine.exit(row.container_name, 137)
    assert service.supervise() == [row.id]
    # The supervisor restarts the same container; its relay keeps the same port.
    relay = relay_name(row.container_name)
    assert engine.starts == [relay, row.container_name, row.container_name]
    assert engine.specs[relay].ports[50051] == ("127.0.0.1", port)


def test_a_new_backend_never_gets_the_port_of_an_exited_one(tmp_path: Path) -> None:
    engine = MemoryContainers()
    service = _service(tmp_path, engine, probe=False)
    first = service.start(BackendRequest(environment="e", type="http"))
    engine.exit(first.container_name, 137)  # not listening: the engine would allow it
    kept = first.config.port
    for _ in range(50):
        other = service.start(BackendRequest(environment="e", type="http"))
        assert other.config.port != kept
        service.stop(other.id)


def test_a_requested_port_in_use_is_a_conflict_naming_it(tmp_path: Path) -> None:
    engine = MemoryContainers()
    engine.ports_in_use.add(24567)
    service = _service(tmp_path, engine, probe=True)
    with pytest.raises(Conflict) as caught:
        service.start(BackendRequest(environment="e", type="http", port=24567))
    assert "24567" in caught.value.message
    assert caught.value.data == {"port": 24567, "bind_address": "127.0.0.1"}
    assert engine.containers == {}, "nothing is left behind"
    assert service.store.backends() == []


def test_a_chosen_port_taken_meanwhile_is_replaced(tmp_path: Path) -> None:
    # Every port the controller draws first is taken: it retries with others.
    engine = MemoryContainers()
    service = _service(tmp_path, engine, probe=False)
    first_pick = docker_engine(service).pick_port  # the next start's first: taken
    picks: list[int] = []

    def pick(host: str, taken: set[int]) -> int:
        port = first_pick(host, taken)
        picks.append(port)
        if len(picks) == 1:
            engine.ports_in_use.add(port)
        return port

    docker_engine(service).pick_port = pick  # type: ignore[method-assign]
    row = service.start(BackendRequest(environment="e", type="http"))
    assert len(picks) == 2
    assert row.config.port == picks[1]
    relay = relay_name(row.container_name)
    assert engine.specs[relay].ports[5678] == ("127.0.0.1", picks[1])
    assert row.status == "ready"
    assert set(engine.containers) == {relay, row.container_name}, (
        "the first relay is removed"
    )


def test_a_start_gives_up_after_its_attempts(tmp_path: Path) -> None:
    engine = MemoryContainers()
    service = _service(tmp_path, engine, probe=False)
    # Everything this controller may draw is in use.
    engine.ports_in_use = set(HOST_PORTS)
    with pytest.raises(Conflict):
        service.start(BackendRequest(environment="e", type="http"))
    assert engine.containers == {}
    assert service.store.backends() == []
    assert PORT_ATTEMPTS > 1


def test_a_port_another_backend_holds_is_a_conflict_even_while_it_is_down(
    tmp_path: Path,
) -> None:
    engine = MemoryContainers()
    service = _service(tmp_path, engine, probe=True)
    first = service.start(BackendRequest(environment="e", type="http"))
    engine.exit(first.container_name, 137)  # down: the engine would publish the port
    port = first.config.port
    with pytest.raises(Conflict) as caught:
        service.start(BackendRequest(environment="e", type="rpc", port=port))
    assert caught.value.data == {"port": port, "backend": first.id}
    assert [row.id for row in service.store.backends()] == [first.id]
