"""Relays made ahead (RELAY_POOL, engine/relay_pool.py) on the real engine, on both
controllers (``ON_BOTH``: its own process and the compose system's): after a start of
an http or rpc backend without network, the next one's relay runs already, on a host
port of its own; the next such start takes it (its backend id and port: the relay
existed before the start was asked for) and answers through it, and the controller's
/metrics counts it taken; the relay goes with its backend."""

import calendar
import time
from typing import Any, Literal

import pytest

from beephost_client.controller import ControllerClient
from tests.e2e.containers import docker, inspect
from tests.e2e.controller_process import ON_BOTH, ControllerTarget, build_environment

pytestmark = pytest.mark.docker

ENVIRONMENT = "relays-ahead"
#: The server socket each kind's relay copies its port to (images/layout.py).
SOCKETS = {"http": "/run/beephost/http.sock", "rpc": "/run/beephost/rpc.sock"}


def _waiting(
    controller: ControllerTarget, docker_cli: str, kind: str, image: str
) -> list[dict[str, Any]]:
    """The relays made ahead for ``kind`` backends of ``image`` that no start took
    and that run (one is created, then started): their inspections."""
    made = set(controller.owned()) - set(controller.owned("sandbox"))
    found = [inspect(docker_cli, container) for container in made]
    return [
        info
        for info in found
        if SOCKETS[kind] in info["Config"]["Cmd"]
        and info["Config"]["Image"] == image
        and info["State"]["Running"]
    ]


def _waiting_one(
    controller: ControllerTarget, docker_cli: str, kind: str, image: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while not (waiting := _waiting(controller, docker_cli, kind, image)):
        assert time.monotonic() < deadline, f"no running {kind} relay was made ahead"
        time.sleep(0.2)
    (member,) = waiting  # RELAY_POOL is 1 (other images' relays may wait too)
    return member


def _host_port(info: dict[str, Any]) -> int:
    ((binding,),) = info["HostConfig"]["PortBindings"].values()
    return int(binding["HostPort"])


@ON_BOTH
@pytest.mark.parametrize("kind", ["http", "rpc"])
def test_a_start_takes_the_relay_made_after_the_last_one(
    controller_target: ControllerTarget,
    api: ControllerClient,
    docker_cli: str,
    kind: Literal["http", "rpc"],
) -> None:
    build_environment(api, ENVIRONMENT, [], timeout=600)
    image = api.environment(ENVIRONMENT).image
    assert image is not None
    first = api.wait_backend(api.start_backend(ENVIRONMENT, kind).id, timeout=120)
    try:
        member = _waiting_one(controller_target, docker_cli, kind, image)
        waits_for = member["Config"]["Labels"]["io.beephost.relay-for"]
        assert _host_port(member) != int(str(first.endpoint).rsplit(":", 1)[1])

        taken = _taken(api)
        asked = time.time()
        second = api.start_backend(ENVIRONMENT, kind)
        try:
            assert second.id == waits_for, "the member's backend id"
            relay = inspect(
                docker_cli, f"beephost-{controller_target.name}-{second.id}-relay"
            )
            assert relay["Id"] == member["Id"], "its relay is the one made ahead"
            started = _seconds(relay["State"]["StartedAt"])
            assert started < asked, "it ran before the start was asked for"
            assert _taken(api) >= taken + 1, "counted on the controller's /metrics"
            ready = api.wait_backend(second.id, timeout=120)
            assert str(ready.endpoint).endswith(f":{_host_port(member)}")
            with api.connect_backend(second.id) as client:
                assert client.evaluate("6 * 7") == 42
            # The next one's relay is made in turn.
            following = _waiting_one(controller_target, docker_cli, kind, image)
            assert following["Id"] != member["Id"]
        finally:
            api.stop_backend(second.id)
        gone = docker(docker_cli, "ps", "-aq", "--filter", f"id={member['Id']}")
        assert gone.strip() == "", "the relay goes with its backend"
    finally:
        api.stop_backend(first.id)


def _taken(api: ControllerClient) -> float:
    """The controller's count of starts that took a relay made ahead."""
    series = 'beephost_controller_relays_ahead_total{outcome="taken"} '
    (line,) = [x for x in api.metrics().splitlines() if x.startswith(series)]
    return float(line.removeprefix(series))


def _seconds(docker_time: str) -> float:
    """A time as Docker writes it (UTC, RFC 3339, up to nanoseconds) since the epoch."""
    whole, _, fraction = docker_time.rstrip("Z").partition(".")
    parsed = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return parsed + float(f"0.{fraction or 0}")
