"""plan(): a backend's start decided from plain data (no store, no engine, no host)."""

import json
from pathlib import Path

import pytest

from beephost_controller.engine.docker_plan import (
    LABEL_RELAY_FOR,
    PORT_ATTEMPTS,
    DockerPlan,
    plan,
    socket_dir_owner,
)
from beephost_controller.engine.sandbox_env import (
    ADMIN_CONTROLLER_URL,
    LABEL_BACKEND_ID,
)
from beephost_controller.images.labels import LABEL_CONTROLLER
from beephost_controller.rows import EnvironmentRow
from beephost_controller.schemas import BackendLimits, BackendOptions
from beephost_controller.settings import Settings
from beephost_controller.starts import BackendRequest, Minted, token_digest
from beephost_protocol.errors import Conflict, InvalidRequest

SETTINGS = Settings.model_validate(
    {"database": "/nowhere/db", "socket_root": "/run/sockets"}
)
READY = EnvironmentRow("e", "3.11", [], False, False, "ready", image="img:1")
MINTED = Minted(
    "b-1",
    "backend-token",
    "controller-token",
    euid=1000,
    egid=1000,
    egress_token="egress-token",
)


def _plan(
    request: BackendRequest,
    env: EnvironmentRow = READY,
    *,
    minted: Minted = MINTED,
    held: dict[int, str] | None = None,
    settings: Settings = SETTINGS,
) -> DockerPlan:
    return plan(
        request,
        env,
        settings,
        minted=minted,
        held_ports=held or {},
        pick_port=lambda host, taken: max(taken | {30000}) + 1,
    )


def test_an_http_backend_without_network_has_none_and_its_relay_the_port() -> None:
    planned = _plan(BackendRequest("e", "http"), held={30005: "b-0"})
    row, spec, relay = planned.row, planned.spec, planned.relay
    assert (row.id, row.status, row.token) == ("b-1", "starting", "backend-token")
    assert row.container_name == spec.name == "beephost-default-b-1"
    assert row.config.port == 30006, "none of the held ports"
    # The backend has no network at all: nothing but its relay's port reaches it.
    assert (spec.network, spec.ports) == (None, {})
    assert relay is not None
    assert planned.publisher is relay
    assert relay.name == "beephost-default-b-1-relay"
    assert relay.ports == {5678: ("127.0.0.1", 30006)}
    assert planned.network == relay.network == "beephost-default-offline"
    assert relay.socket_dir == spec.socket_dir == Path("/run/sockets/b-1")
    assert relay.command[-3:] == [
        "beephost_core.relay",
        "5678",
        "/run/beephost/http.sock",
    ]
    assert (relay.image, relay.user, relay.read_only) == ("img:1", spec.user, True)
    assert relay.healthcheck == ()
    # A relay is no backend: reconciliation tells them apart by their labels.
    assert LABEL_BACKEND_ID not in relay.labels
    assert relay.labels[LABEL_RELAY_FOR] == "b-1"
    assert relay.labels[LABEL_CONTROLLER] == "default"
    # The network is the controller's, not this backend's: no backend label on it.
    assert LABEL_BACKEND_ID not in planned.network_labels
    assert planned.network_labels[LABEL_CONTROLLER] == "default"
    assert planned.port_attempts == PORT_ATTEMPTS, "a chosen port may be replaced"
    assert planned.controller_token is None
    assert planned.socket_dir == Path("/run/sockets/b-1")
    assert spec.labels[LABEL_BACKEND_ID] == "b-1"
    assert spec.environment == {
        "BEEPHOST_HTTP_BACKEND_TOKEN_SHA256": token_digest("backend-token"),
        "BEEPHOST_HTTP_BACKEND_SOCKET_PATH": "/run/beephost/http.sock",
        "BEEPHOST_HTTP_BACKEND_ACTIVITY_FILE": "/tmp/beephost-activity",
        "BEEPHOST_HTTP_BACKEND_ENVIRONMENT": "e",
        "BEEPHOST_HTTP_BACKEND_WORKSPACE_QUOTA_BYTES": str(1 << 30),
    }
    assert spec.volumes == {
        "beephost-default-b-1-workspace": "/workspace",
        "beephost-default-b-1-packages": "/packages",
    }
    assert row.config.hardening.network is False, "resolved from the environment"
    moved = planned.with_port(30010)
    assert moved.relay is not None
    assert moved.relay.ports == {5678: ("127.0.0.1", 30010)}
    assert (moved.spec.ports, moved.row.config.port) == ({}, 30010)


def test_an_http_backend_with_network_publishes_its_own_port() -> None:
    planned = _plan(BackendRequest("e", "http", options=BackendOptions(network=True)))
    assert planned.relay is None
    assert planned.publisher is planned.spec
    assert planned.spec.network == "bridge"
    assert planned.spec.ports == {5678: ("127.0.0.1", 30001)}
    assert planned.network is None
    assert planned.with_port(30002).spec.ports == {5678: ("127.0.0.1", 30002)}


def test_a_requested_port_is_tried_once_and_a_held_one_conflicts() -> None:
    planned = _plan(BackendRequest("e", "rpc", port=24567))
    assert planned.publisher.ports == {50051: ("127.0.0.1", 24567)}
    assert planned.port_attempts == 1
    with pytest.raises(Conflict) as held:
        _plan(BackendRequest("e", "rpc", port=24567), held={24567: "b-0"})
    assert held.value.data == {"port": 24567, "backend": "b-0"}


def test_a_pipe_backend_gets_a_socket_directory_and_no_network() -> None:
    planned = _plan(BackendRequest("e", "pipe"))
    assert planned.socket_dir == Path("/run/sockets/b-1")
    assert planned.spec.socket_dir == planned.socket_dir
    assert (planned.spec.network, planned.network, planned.spec.ports) == (
        None,
        None,
        {},
    )
    assert planned.row.config.port is None
    assert planned.socket_dir_owner is None, "the controller keeps it"
    assert planned.spec.group_add == ["1000"], "the controller's group shares it"
    as_root = _plan(
        BackendRequest("e", "pipe"), minted=Minted("b-1", "t", "c", 0, 0, "e")
    )
    assert as_root.socket_dir_owner == (10001, 10001)
    assert as_root.spec.group_add == []


def test_a_socket_group_shares_pipe_sockets_with_host_users() -> None:
    root = Minted("b-1", "t", "c", 0, 0, "e")
    user = Minted("b-1", "t", "c", 1000, 1000, "e")
    assert socket_dir_owner(4242, root) == (10001, 4242)
    assert socket_dir_owner(4242, user) == (-1, 4242)
    assert socket_dir_owner(None, user) is None
    grouped = SETTINGS.model_copy(update={"pipe_socket_group": 4242})
    planned = _plan(BackendRequest("e", "pipe"), minted=user, settings=grouped)
    assert planned.spec.group_add == ["4242"], "the server may write the directory"
    assert planned.socket_dir_owner == (-1, 4242)
    http = _plan(BackendRequest("e", "http"), minted=root, settings=grouped)
    assert http.socket_dir_owner == (10001, 4242), "its socket is shared the same way"


def test_limits_and_options_travel_from_the_request_to_row_and_spec() -> None:
    request = BackendRequest(
        "e",
        "http",
        limits=BackendLimits(memory_mb=1024, cpus=0.5, pids=512),
        options=BackendOptions(read_only=False, network=True, cap_add=["NET_RAW"]),
    )
    planned = _plan(request)
    assert planned.row.config.limits == request.limits
    assert planned.row.config.hardening == request.options
    spec = planned.spec
    assert (spec.memory_mb, spec.cpus, spec.pids) == (1024, 0.5, 512)
    assert (spec.read_only, spec.cap_add, spec.network) == (
        False,
        ("NET_RAW",),
        "bridge",
    )
    assert planned.network is None, "the default bridge: nothing to create"


def test_a_workspace_quota_asked_at_start_wins_over_the_default() -> None:
    default = _plan(BackendRequest("e", "pipe")).spec.environment
    assert default["BEEPHOST_PIPE_BACKEND_WORKSPACE_QUOTA_BYTES"] == str(1 << 30)
    request = BackendRequest("e", "pipe", limits=BackendLimits(workspace_quota_bytes=0))
    asked = _plan(request).spec.environment
    assert asked["BEEPHOST_PIPE_BACKEND_WORKSPACE_QUOTA_BYTES"] == "0"


def test_a_workspace_quota_must_be_a_whole_number_of_bytes() -> None:
    for bad in (True, -1, "1G", 1.5):
        with pytest.raises(ValueError, match="workspace_quota_bytes"):
            BackendLimits.model_validate({"workspace_quota_bytes": bad})


def test_an_admin_backend_holds_a_controller_token_of_its_own() -> None:
    admin = EnvironmentRow("admin", "3.11", [], False, True, "ready", image="img:a")
    planned = _plan(BackendRequest("admin", "rpc"), admin)
    assert planned.controller_token == "controller-token"
    assert planned.row.controller_token_sha256 == token_digest("controller-token")
    assert planned.spec.controller_socket_dir == SETTINGS.admin_socket.parent
    worker_env = json.loads(planned.spec.environment["BEEPHOST_RPC_BACKEND_WORKER_ENV"])
    assert worker_env == {
        "BEEPHOST_CONTROLLER_URL": ADMIN_CONTROLLER_URL,
        "BEEPHOST_CONTROLLER_TOKEN": "controller-token",
    }


def test_an_environment_that_is_not_ready_is_refused() -> None:
    building = EnvironmentRow("e", "3.11", [], False, False, "building")
    with pytest.raises(InvalidRequest) as refused:
        _plan(BackendRequest("e", "http"), building)
    assert refused.value.data == {"environment": "e", "status": "building"}


def test_with_port_moves_the_row_and_the_spec_together() -> None:
    moved = _plan(BackendRequest("e", "http")).with_port(31000)
    assert moved.row.config.port == 31000
    assert moved.publisher.ports == {5678: ("127.0.0.1", 31000)}


def _with_index(index_url: str, bundle: Path) -> Settings:
    return SETTINGS.model_copy(update={"index_url": index_url, "ca_bundle": bundle})


@pytest.mark.parametrize("network", [True, False])
def test_a_backend_with_network_installs_from_where_the_controller_does(
    network: bool, tmp_path: Path
) -> None:
    settings = _with_index("https://mirror.example/simple", tmp_path / "ca.pem")
    planned = _plan(
        BackendRequest("e", "pipe", options=BackendOptions(network=network)),
        settings=settings,
    )
    worker_env = json.loads(
        planned.spec.environment.get("BEEPHOST_PIPE_BACKEND_WORKER_ENV", "{}")
    )
    if not network:  # nothing could use them
        assert worker_env == {}
        assert planned.ca_bundle is None
        return
    assert worker_env == {
        "PIP_INDEX_URL": "https://mirror.example/simple",
        "UV_DEFAULT_INDEX": "https://mirror.example/simple",
        "SSL_CERT_FILE": "/packages/ca-bundle.pem",
        "REQUESTS_CA_BUNDLE": "/packages/ca-bundle.pem",
        "PIP_CERT": "/packages/ca-bundle.pem",
    }
    assert planned.ca_bundle == tmp_path / "ca.pem"


def test_an_index_url_with_credentials_never_reaches_user_code(tmp_path: Path) -> None:
    settings = SETTINGS.model_copy(
        update={"index_url": "https://user:s3cret@mirror.example/simple"}
    )
    planned = _plan(
        BackendRequest("e", "pipe", options=BackendOptions(network=True)),
        settings=settings,
    )
    assert "s3cret" not in json.dumps(dict(planned.spec.environment))
