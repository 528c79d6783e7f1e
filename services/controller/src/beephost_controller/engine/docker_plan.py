"""A backend's start on Docker, planned: the container specs from the request, no I/O.

``plan`` decides everything a start on Docker needs (validation, options, the row,
labels, the admin wiring, the socket directory, the relay, the network, the host
port) from plain data; whatever is random or read from the host (ids, tokens, the
process's uid) is drawn before, in ``starts.Minted``, and a host port comes from the
``pick_port`` it is given. ``DockerBackends.plan`` calls it and ``docker_launch.py``
makes it real.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from beephost_controller.egress import secret_names
from beephost_controller.engine.docker_egress import EgressPaths
from beephost_controller.engine.sandbox_env import (
    LABEL_BACKEND_ID,
    LABEL_BACKEND_TYPE,
    LABEL_ENVIRONMENT,
    proxy_server_env,
    proxy_worker_env,
    sandbox_labels,
    selector,
    server_environment,
    setting,
)
from beephost_controller.images.layout import (
    CONTAINER_PORTS,
    PACKAGES,
    SERVER_SOCKETS,
    SOCKET_SCHEMES,
    WORKSPACE,
    healthcheck_command,
    relay_command,
    server_command,
)
from beephost_controller.rows import BackendRow, EnvironmentRow
from beephost_controller.schemas import BackendType
from beephost_controller.settings import Settings
from beephost_controller.specs import ContainerSpec
from beephost_controller.starts import (
    BackendRequest,
    Minted,
    new_row,
    ready_image,
    resolved_options,
    start_egress,
    token_digest,
)
from beephost_protocol.errors import Conflict, InvalidRequest

#: On a relay's container: the backend whose port it publishes (no LABEL_BACKEND_ID:
#: a relay is no backend).
LABEL_RELAY_FOR = "io.beephost.relay-for"

#: The uid:gid a backend's socket directory belongs to when the controller is root.
SOCKET_OWNER = (10001, 10001)

#: Ports tried for one start before it fails (each taken one is retried).
PORT_ATTEMPTS = 8

#: A relay's process limit: two threads for each of the connections it relays at once
#: (``beephost_core.relay.MAX_CONNECTIONS``, 256) and its main thread, with room.
RELAY_PIDS = 2 * 256 + 16
#: Restarts Docker gives a relay that dies (its backend's own limit is separate).
RELAY_RESTARTS = 100


def offline_network(settings: Settings) -> str:
    """The bridge network the relays of http and rpc backends without network share:
    no masquerade (no route out) and no inter-container traffic, their ports
    published on the host. The backends themselves have no network at all. One per
    controller, not one per backend: a network costs a start about 90 ms, and the
    engine's default address pools hold only about 30 networks."""
    return f"beephost-{settings.name}-offline"


def container_name(controller: str, backend_id: str) -> str:
    """The name of backend ``backend_id``'s container, of controller ``controller``."""
    return f"beephost-{controller}-{backend_id}"


def relay_name(container_name: str) -> str:
    """The name of the container that publishes the port of backend ``container_name``."""
    return f"{container_name}-relay"


def socket_endpoint(kind: BackendType, socket_dir: Path) -> str:
    """The URL of a backend's server on its Unix socket, in ``socket_dir`` on the
    controller's side: the pipe's endpoint, the http and rpc servers' second way in."""
    return f"{SOCKET_SCHEMES[kind]}://{socket_dir / Path(SERVER_SOCKETS[kind]).name}"


@dataclass(frozen=True)
class DockerPlan:
    """A start's decisions on Docker: what ``docker_launch.launch`` records and makes."""

    row: BackendRow
    spec: ContainerSpec
    #: The shared offline network to ensure first (its relay's: no route out, a
    #: published port), and its labels (the controller's, not one backend's).
    network: str | None
    #: The server's socket directory to create, the (uid, gid) to give it (-1: keep
    #: the controller's) and its mode.
    socket_dir: Path | None
    socket_dir_owner: tuple[int, int] | None
    #: The controller token an admin backend holds (a secret: never in a log).
    controller_token: str | None
    #: Whether a taken port may be replaced by another (it was chosen, not requested).
    port_attempts: int
    #: The controller's CA bundle, copied to ``CA_BUNDLE_PATH`` before the start (a
    #: backend with network: its user code's installs trust what the controller does).
    ca_bundle: Path | None = None
    network_labels: Mapping[str, str] = field(default_factory=dict)
    #: The relay that publishes the port of an http or rpc backend without network.
    relay: ContainerSpec | None = None
    #: That relay's container when it was made ahead (``relay_pool``): only the
    #: backend is made.
    relay_made: str | None = None
    #: Host ports other backends hold: a port retried is none of them.
    held_ports: frozenset[int] = frozenset()

    @property
    def publisher(self) -> ContainerSpec:
        """The container that publishes the host port: the relay, else the backend."""
        return self.relay or self.spec

    def with_port(self, port: int) -> "DockerPlan":
        """The same start on another host port (the planned one was taken)."""
        (container_port, (host, _)) = next(iter(self.publisher.ports.items()))
        config = replace(self.row.config, port=port)
        published = replace(self.publisher, ports={container_port: (host, port)})
        if self.relay is not None:
            return replace(self, row=replace(self.row, config=config), relay=published)
        return replace(self, row=replace(self.row, config=config), spec=published)


#: A pipe socket directory's mode: its group shares it, and the setgid bit gives the
#: socket made in it that group (the server then sets the socket's mode, 0660).
SOCKET_DIR_MODE = 0o2770


def socket_dir_owner(group: int | None, minted: Minted) -> tuple[int, int] | None:
    """Who a backend's socket directory belongs to (None: the controller).

    A root controller gives it to the server's user, with ``group`` (the
    PIPE_SOCKET_GROUP setting) or the server's own group; any other controller keeps it
    and gives it ``group``, if set, else its own group shares it.
    """
    if minted.euid == 0:
        return SOCKET_OWNER[0], SOCKET_OWNER[1] if group is None else group
    return None if group is None else (-1, group)


def plan(
    request: BackendRequest,
    environment: EnvironmentRow,
    settings: Settings,
    *,
    minted: Minted,
    held_ports: Mapping[int, str],
    pick_port: Callable[[str, set[int]], int],
    extra_labels: Mapping[str, str] | None = None,
    code_volumes: Mapping[str, str] | None = None,
) -> DockerPlan:
    """Plan a start of ``request`` on ``environment``.

    Args:
        held_ports: Host port -> the backend holding it (kept for its restarts, even
            while it is down).
        pick_port: A free host port on an address, none of a set.
        extra_labels: More labels on the container and its network (tests' own).
        code_volumes: The image's code volumes, if any (volume -> directory):
            mounted read-only (engine/code_volumes.py).

    Raises:
        InvalidRequest: The environment is not ready, or the type is unknown.
        Conflict: The requested port is held by another backend.
    """
    env = environment
    image = _check(request, env, held_ports)
    container_port = CONTAINER_PORTS[request.type]
    bind_address = request.bind_address or settings.bind_address
    host_port = None
    if container_port is not None:
        host_port = request.port or pick_port(bind_address, set(held_ports))
    backend_id = minted.backend_id
    name = container_name(settings.name, backend_id)
    _, allow = start_egress(request, env)
    hardening = resolved_options(request.options, start_egress(request, env)[0])
    # An allow-list backend has no network either: its one way out is the egress
    # proxy's socket, mounted read-only, which its server relays from loopback.
    network = bool(hardening.network)
    egress_env: dict[str, str] = {}
    egress_server: dict[str, str] = {}
    egress_mounts = {}
    if allow is not None:
        egress_env = proxy_worker_env(
            backend_id, minted.egress_token, secret_names(allow)
        )
        egress_server = proxy_server_env(request.type)
        egress_mounts = EgressPaths.of(settings).sandbox_mounts()
    labels = sandbox_labels(settings, backend_id, env.name, request.type, extra_labels)
    # The one environment whose code may drive the controller: a token of its own
    # (revoked with the backend) and the controller's Unix socket.
    controller_token = minted.controller_token if env.admin else None
    # Every server listens on a Unix socket in a directory it shares with the
    # controller: the pipe's endpoint, the others' second way in.
    socket_dir = settings.socket_root / backend_id
    owner = socket_dir_owner(settings.pipe_socket_group, minted)
    group_add: list[str] = []
    if minted.euid != 0:
        # The server writes its socket into a directory the controller owns.
        group_add.append(str(owner[1] if owner else minted.egid))
    own_network = None
    network_name = "bridge" if network else None
    ports = {}
    relayed = container_port is not None and host_port is not None and not network
    if container_port is not None and host_port is not None:
        ports = {container_port: (bind_address, host_port)}
    if relayed:
        # No network at all for the backend (it reaches nothing, the host's own
        # addresses included); its relay, on the offline bridge, publishes its port.
        own_network = offline_network(settings)
    limits = request.limits
    row = new_row(
        request,
        env,
        settings,
        minted,
        name=name,
        port=host_port,
        bind_address=bind_address,
        controller_token=controller_token,
    )
    spec = ContainerSpec(
        name=name,
        image=image,
        command=server_command(request.type),
        labels=labels,
        environment={
            **server_environment(
                request.type,
                env,
                settings,
                limits,
                controller_token=controller_token,
                network=network,
                egress_env=egress_env,
            ),
            **egress_server,
            # Only the token's digest goes into the container: its environment is
            # inherited by every docker exec'd process (the health check).
            setting(request.type, "TOKEN_SHA256"): token_digest(minted.token),
            setting(request.type, "SOCKET_PATH"): SERVER_SOCKETS[request.type],
        },
        healthcheck=healthcheck_command(request.type),
        memory_mb=limits.memory_mb,
        cpus=limits.cpus,
        pids=limits.pids,
        read_only=hardening.read_only,
        tmpfs_mb=hardening.tmpfs_mb,
        user=hardening.user,
        cap_add=tuple(hardening.cap_add),
        no_new_privileges=hardening.no_new_privileges,
        restart_retries=settings.restart_limit,
        network=network_name,
        ports={} if relayed else ports,
        socket_dir=socket_dir,
        controller_socket_dir=settings.admin_socket.parent if env.admin else None,
        group_add=group_add,
        volumes=backend_volumes(name),
        shared_volumes=dict(code_volumes or {}),
        egress=egress_mounts,
    )
    return DockerPlan(
        row=row,
        spec=spec,
        network=own_network,
        socket_dir=socket_dir,
        socket_dir_owner=owner,
        controller_token=controller_token,
        port_attempts=PORT_ATTEMPTS if host_port and not request.port else 1,
        ca_bundle=settings.ca_bundle if network else None,
        network_labels={**(extra_labels or {}), **selector(settings)},
        relay=relay_spec(spec, request.type, own_network, ports) if relayed else None,
        held_ports=frozenset(held_ports),
    )


def relay_spec(
    backend: ContainerSpec,
    kind: BackendType,
    network: str | None,
    ports: Mapping[int, tuple[str, int | None]],
) -> ContainerSpec:
    """The relay of ``backend`` (a ``kind`` backend without network): its image and
    socket directory, the controller's labels and the backend's id as
    ``LABEL_RELAY_FOR``, hardened like it, on ``network``, publishing ``ports``."""
    labels = {
        k: v
        for k, v in backend.labels.items()
        if k not in (LABEL_BACKEND_ID, LABEL_BACKEND_TYPE, LABEL_ENVIRONMENT)
    }
    labels[LABEL_RELAY_FOR] = backend.labels[LABEL_BACKEND_ID]
    return ContainerSpec(
        name=relay_name(backend.name),
        image=backend.image,
        command=relay_command(kind),
        labels=labels,
        environment={},
        healthcheck=(),
        # It copies bytes, two threads per connection (256 connections held 41 MiB),
        # at the backend's CPU share.
        memory_mb=96,
        cpus=backend.cpus,
        pids=RELAY_PIDS,
        tmpfs_mb=1,
        user=backend.user,
        restart_retries=RELAY_RESTARTS,
        network=network,
        ports=ports,
        socket_dir=backend.socket_dir,
        group_add=backend.group_add,
        shared_volumes=backend.shared_volumes,
    )


def _check(
    request: BackendRequest, env: EnvironmentRow, held_ports: Mapping[int, str]
) -> str:
    """The environment's image, if a backend may start on it as requested."""
    image = ready_image(env)
    if request.type not in CONTAINER_PORTS:
        raise InvalidRequest(f"unknown backend type {request.type!r}")
    if request.port is not None and request.port in held_ports:
        holder = held_ports[request.port]
        raise Conflict(
            f"host port {request.port} is held by backend {holder}",
            {"port": request.port, "backend": holder},
        )
    return image


def backend_volumes(container_name: str) -> dict[str, str]:
    """A backend's named volumes (made and removed with its container) -> where each
    is mounted: its workspace, and the packages installed into it at run time."""
    return {
        f"{container_name}-workspace": WORKSPACE,
        f"{container_name}-packages": PACKAGES,
    }
