"""The fake internet on its own (tests/e2e/fake_internet.py), before any proxy uses
it: a container on its network reaches every server by name, over HTTPS with the test
CA's certificates; nothing on it reaches off the machine; everything goes by label."""

import json
from collections.abc import Iterator

import pytest

from tests.e2e.fake_internet import (
    ALLOWED,
    INTERNAL,
    INTERNAL_PORT,
    OTHER,
    REBINDING,
    SERVER_DIR,
    FakeInternet,
    fake_internet,
)
from tests.e2e.session_fixtures import BuiltBackends

pytestmark = pytest.mark.docker

#: From a container on the network: each server by name, as a client that trusts the
#: test CA sees it.
REACH = f"""
import json, socket, ssl, urllib.request
context = ssl.create_default_context(cafile="{SERVER_DIR}/ca.pem")
seen = {{}}
for name in ("{ALLOWED}", "{OTHER}"):
    with urllib.request.urlopen(
        urllib.request.Request(f"https://{{name}}/x", headers={{"X-Probe": "1"}}),
        context=context, timeout=10,
    ) as reply:
        seen[name] = json.load(reply)
    with socket.create_connection((name, 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            issuer = dict(x[0] for x in tls.getpeercert()["issuer"])
            seen[name]["issuer"] = issuer["commonName"]
    with urllib.request.urlopen(f"http://{{name}}/", timeout=10) as reply:
        seen[name + ":80"] = json.load(reply)["scheme"]
with socket.create_connection(("{INTERNAL}", {INTERNAL_PORT}), timeout=10) as raw:
    seen["{INTERNAL}"] = raw.recv(100).decode().strip()
print(json.dumps(seen))
"""

#: From a container on the network: off the machine, by address and by name.
ESCAPE = """
import json, socket
out = {}
for where in (("1.1.1.1", 443), ("8.8.8.8", 53)):
    try:
        socket.create_connection(where, timeout=3).close()
        out[where[0]] = "connected"
    except OSError as exc:
        out[where[0]] = type(exc).__name__ + ": " + str(exc)
try:
    socket.getaddrinfo("pypi.org", 443)
    out["pypi.org"] = "resolved"
except OSError as exc:
    out["pypi.org"] = type(exc).__name__ + ": " + str(exc)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def world(backend_images: BuiltBackends, docker_cli: str) -> Iterator[FakeInternet]:
    with fake_internet(docker_cli, backend_images.base.tag) as world:
        yield world
    assert world.remaining() == [], "the fake internet left objects behind"


def test_a_container_on_the_network_reaches_every_server(world: FakeInternet) -> None:
    status, output = world.container_run(REACH)
    assert status == 0, output
    seen = json.loads(output.splitlines()[-1])
    for name in (ALLOWED, OTHER):
        assert seen[name]["server"] == name
        assert seen[name]["scheme"] == "https"
        assert seen[name]["headers"]["X-Probe"] == "1"
        assert seen[name]["issuer"] == world.ca.common_name
        assert seen[f"{name}:80"] == "http"
    assert seen[INTERNAL] == INTERNAL


def test_nothing_on_the_network_reaches_off_the_machine(world: FakeInternet) -> None:
    status, output = world.container_run(ESCAPE)
    assert status == 0, output
    seen = json.loads(output.splitlines()[-1])
    # No route off it (unreachable), or the engine drops what leaves (timed out).
    for address in ("1.1.1.1", "8.8.8.8"):
        assert seen[address].startswith(("OSError", "TimeoutError")), seen
        assert "unreachable" in seen[address] or "timed out" in seen[address], seen
    assert seen["pypi.org"].startswith("gaierror"), seen


def test_the_host_map_names_the_servers_and_every_rebinding_name(
    world: FakeInternet,
) -> None:
    hosts = world.hosts()
    assert hosts[ALLOWED] == [world.addresses[ALLOWED]]
    assert set(REBINDING) <= set(hosts)
    assert hosts["rebind.test"] == [world.addresses[ALLOWED], "127.0.0.1"]
    assert hosts["controller.test"] == [world.gateway]
    settings = world.controller_settings()
    assert json.loads(settings["EGRESS_HOSTS"]) == hosts
    assert json.loads(settings["EGRESS_INTERNAL_RANGES"]) == {
        "fake-internet": world.subnet
    }
    assert settings["EGRESS_PROXY_NETWORK"] == world.network
