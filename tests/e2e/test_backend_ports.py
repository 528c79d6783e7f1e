"""Host ports of http and rpc backends on the real engine.

A backend keeps its endpoint across restarts (the supervisor's, after ``docker kill``,
and Docker's own policy, after a crash), also when the controller cannot probe the
host's ports (``choose_host_ports=false``, as in compose): the engine's own pick, host
port 0, is a new port on every start. A requested port that is in use is a
``conflict`` naming it: 409 over REST, one line in the CLI.
"""

import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from beephost_client import Conflict, connect
from beephost_client.controller import Backend, ControllerClient
from tests.e2e.containers import inspect
from tests.e2e.controller_process import (
    ControllerProcess,
    beep_host,
    build_environment,
    module_controller,
    stopped_after,
    wait_restarted,
)

pytestmark = pytest.mark.docker


#: A controller set up as compose sets up the one in its container.
in_container_controller = module_controller(
    "ports-controller",
    {"CHOOSE_HOST_PORTS": "false"},
    name="in_container_controller",
)


@pytest.fixture(scope="module")
def in_container(
    in_container_controller: ControllerProcess,
) -> Iterator[ControllerClient]:
    """A client of the in-container controller, with its environment ``ports``."""
    with in_container_controller.client() as api:
        build_environment(api, "ports", [], timeout=600)
        yield api


@pytest.fixture
def listening() -> Iterator[int]:
    """A loopback port some other process listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _ready(api: ControllerClient, kind: str) -> Backend:
    started = api.start_backend("ports", kind)  # type: ignore[arg-type]
    return api.wait_backend(started.id, timeout=60)


@pytest.mark.parametrize("kind", ["http", "rpc"])
def test_a_backend_keeps_its_endpoint_across_restarts(
    in_container: ControllerClient, docker_cli: str, kind: str
) -> None:
    api = in_container
    started = api.start_backend("ports", kind)  # type: ignore[arg-type]
    token = started.token
    backend = api.wait_backend(started.id, timeout=60)
    with stopped_after(api, backend):
        endpoint = backend.endpoint
        assert endpoint is not None
        # The supervisor's restart (Docker's policy leaves a `docker kill` alone).
        subprocess.run(
            [docker_cli, "kill", backend.container_id or ""], check=True, timeout=60
        )
        assert wait_restarted(api, backend.id, 1).endpoint == endpoint
        # Docker's own restart, after the server process crashed.
        pid = inspect(docker_cli, backend.container_id or "")["State"]["Pid"]
        os.kill(pid, signal.SIGKILL)
        assert wait_restarted(api, backend.id, 2).endpoint == endpoint
        # What `start` printed still works: the URL and the token.
        with connect(endpoint, token=token) as client:
            assert client.evaluate("6 * 7") == 42


def test_a_requested_port_in_use_is_a_conflict(
    in_container: ControllerClient, listening: int
) -> None:
    with pytest.raises(Conflict) as caught:
        in_container.start_backend("ports", "http", port=listening)
    assert str(listening) in caught.value.message
    assert caught.value.data["port"] == listening
    # Nothing is left of the refused start; the controller goes on serving.
    assert in_container.backends() == []
    backend = _ready(in_container, "http")
    in_container.stop_backend(backend.id)


@pytest.fixture(scope="module")
def rest_env(controller: ControllerProcess) -> str:
    """An environment of the host controller (which probes its host's ports)."""
    with controller.client() as api:
        return build_environment(api, "ports-rest", [], timeout=600)


def test_a_port_conflict_over_rest_is_409(
    controller: ControllerProcess, rest_env: str, listening: int
) -> None:
    body = json.dumps(
        {"environment": rest_env, "type": "rpc", "port": listening}
    ).encode()
    request = urllib.request.Request(
        f"{controller.url}/api/v1/backends",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)  # loopback only
    assert caught.value.code == 409
    with caught.value:
        error = json.loads(caught.value.read())["error"]
    assert error["code"] == "conflict"
    assert str(listening) in error["message"]
    assert "http+docker" not in error["message"]


def test_a_port_conflict_in_the_cli_is_one_line(
    controller: ControllerProcess, rest_env: str, listening: int
) -> None:
    result = beep_host(
        controller,
        "start",
        "http",
        "--venv",
        rest_env,
        "--port",
        str(listening),
        timeout=300,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: host port {listening} on 127.0.0.1 is already in use"], (
        result.stderr
    )
