"""``DockerBackends``: the backend engine port on Docker.

A backend is a hardened container (``docker_plan.py`` plans it, ``docker_launch.py``
makes it) with its named volumes, its socket directory on the controller's side and,
for an http or rpc backend without network, a relay that publishes its port from the
controller's one offline bridge. Code volumes (``code_volumes.py``) and host ports
(``host_ports.py``) are this engine's too: the use cases see none of it.

Networking (measured on engine 20.10): a backend without network runs with
``network_mode=none``: no interface but loopback, so its code reaches nothing, not
the host's own addresses nor a bridge's gateway (which a bridge without masquerade
still let through to host services). An http or rpc backend without network is
published by a relay (``beephost_core.relay``, in a container of its own from the
same image) on the controller's one shared bridge (``docker_plan.offline_network``,
with masquerade and inter-container traffic off), which copies its port to the
server's Unix socket in the directory the two share. Every server listens on such a
socket, and the controller probes it there: a host port is out of its reach when it
runs in a container itself. The engine sets a network up for a container before
starting its process (80-130 ms for a veth pair on the bridge and the port's proxy),
so a container is created off its network and joins it right after its start
(``DockerContainers``): the set-up runs beside the process's boot. A start cut short
between the two is joined by ``tidy``.

Ports: an http or rpc backend publishes ONE concrete host port, chosen at start and
kept in its row (``config.port``): the engine re-assigns an ephemeral port (host
port 0) on every start of a container, so a restart, by Docker's policy or by the
supervisor, would move the endpoint that ``start`` printed (host_ports.py picks it; a
port taken meanwhile is retried with another).
"""

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path

from beephost_controller.egress_registry import (
    MAX_REFUSALS,
    ensure_quietly,
    in_background,
    open_egress,
)
from beephost_controller.engine.code_volumes import CODE_FILL_WAIT, CodeVolumes
from beephost_controller.engine.docker_egress import DockerEgress
from beephost_controller.engine.docker_launch import launch
from beephost_controller.engine.docker_plan import (
    LABEL_RELAY_FOR,
    DockerPlan,
    backend_volumes,
    offline_network,
    plan,
    relay_name,
    socket_endpoint,
)
from beephost_controller.engine.host_ports import pick_port
from beephost_controller.engine.relay_pool import (
    BOOT_WAIT,
    LABEL_RELAY_AHEAD,
    Member,
    RelayPool,
    RelaySite,
    relay_key,
    until_exists,
)
from beephost_controller.engine.sandbox_env import LABEL_BACKEND_ID, selector
from beephost_controller.images.labels import (
    KIND_ENVIRONMENT_BUILD,
    LABEL_IMAGE_OWNER,
    LABEL_KIND,
)
from beephost_controller.images.layout import CONTAINER_PORTS, SERVER_SOCKETS
from beephost_controller.ports import (
    BackendContainers,
    ContainerEngineError,
    ContainerState,
    EgressRefusal,
    ImageBuilder,
    Record,
    Sandbox,
    ServiceState,
)
from beephost_controller.rows import BackendRow, EnvironmentRow
from beephost_controller.secret_store import SecretStore
from beephost_controller.settings import Settings
from beephost_controller.starts import (
    BackendPlan,
    BackendRequest,
    Minted,
    is_backend_id,
    new_backend_id,
)

logger = logging.getLogger(__name__)


class DockerBackends:
    """Backends as Docker containers (a ``BackendEngine``).

    Args:
        containers: The engine's backend containers (``DockerContainers``).
        extra_labels: More labels on every container, volume and network (tests').
        clock: When a container started (its row's ``created_at``).
        spawn: Runs a fill of code volumes in the background (tests run it at once).
        images: Makes the egress proxy's image (None: allow-list starts fail).
        secrets: The stored secrets the egress proxy's configuration holds.
        egress: The egress proxy (default: one made of the above).
        boot_wait: Seconds a relay made ahead waits for the backend launched before
            it to listen (tests' fake engine runs no server: 0).
    """

    def __init__(
        self,
        settings: Settings,
        containers: BackendContainers,
        *,
        extra_labels: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        spawn: Callable[[Callable[[], None]], None] | None = None,
        images: ImageBuilder | None = None,
        secrets: SecretStore | None = None,
        egress: DockerEgress | None = None,
        boot_wait: float = BOOT_WAIT,
    ) -> None:
        self.settings = settings
        self.containers = containers
        self.extra_labels = dict(extra_labels or {})
        self.clock = clock
        self._selector = selector(settings)
        self.code_volumes = CodeVolumes(
            containers,
            settings.code_volumes,
            f"beephost-{settings.name}",
            {**self.extra_labels, **self._selector},
            spawn=spawn,
        )
        self._spawn = spawn or in_background
        self.egress = egress or DockerEgress(
            settings,
            containers,
            images,
            secrets or SecretStore(settings.secret_directory),
            extra_labels=self.extra_labels,
        )

        self.boot_wait = boot_wait
        self.relays = RelayPool(
            containers,
            size=settings.relay_pool,
            settings_name=settings.name,
            socket_root=settings.socket_root,
            draw_id=new_backend_id,
            pick_port=self._pick_port,
            spawn=self._spawn,
        )

    def pick_port(self, host: str, taken: set[int]) -> int:
        """A free host port on ``host``, none of ``taken`` nor a pooled relay's
        (host_ports.py)."""
        return self._pick_port(host, taken | self.relays.ports())

    def _pick_port(self, host: str, taken: set[int]) -> int:
        return pick_port(host, taken, probe=self.settings.choose_host_ports)

    def _socket_dir(self, backend_id: str) -> Path:
        return self.settings.socket_root / backend_id

    @staticmethod
    def _ref(row: BackendRow) -> str:
        return row.container_id or row.container_name

    # -- a start -------------------------------------------------------------------------

    def plan(
        self,
        request: BackendRequest,
        environment: EnvironmentRow,
        minted: Minted,
        held_ports: Mapping[int, str],
    ) -> BackendPlan:
        env = environment
        # A pool's member, which no one waits for, waits for its image's copy into
        # code volumes: it mounts them from its start so.
        wait = CODE_FILL_WAIT if request.pooled else 0.0
        code_volumes = (
            self.code_volumes.mounts(env.image, wait=wait)
            if env.image is not None and env.status == "ready"
            else None
        )

        def planned_with(
            minted: Minted, pick: Callable[[str, set[int]], int]
        ) -> DockerPlan:
            return plan(
                request,
                env,
                self.settings,
                minted=minted,
                held_ports=held_ports,
                pick_port=pick,
                extra_labels=self.extra_labels,
                code_volumes=code_volumes,
            )

        planned = planned_with(minted, self.pick_port)
        member = None
        if planned.relay is not None and request.port is None:
            member = self.relays.take(relay_key(planned.relay))
        if member is not None:
            # The same start as the member's backend: its id, and its relay's port.
            taken = member
            planned = planned_with(
                replace(minted, backend_id=taken.backend_id),
                lambda host, held: taken.port,
            )
            planned = replace(planned, relay_made=taken.container_id)
        return BackendPlan(planned.row, planned.controller_token, planned)

    def release(self, planned: BackendPlan) -> None:
        layout = planned.layout
        if isinstance(layout, DockerPlan) and layout.relay_made is not None:
            port = layout.row.config.port or 0
            self.relays.remove(Member(layout.row.id, port, layout.relay_made))

    def launch(self, planned: BackendPlan, record: Record) -> None:
        layout = planned.layout
        if not isinstance(layout, DockerPlan):  # another engine's plan: a wiring bug
            raise TypeError(f"not a Docker plan: {type(layout).__name__}")
        open_egress(self.egress.ensure, self.egress.registry, planned.row)
        try:
            launch(
                self.containers,
                layout,
                record,
                pick_port=self.pick_port,
                clock=self.clock,
                undo=lambda: self.remove(planned.row),
            )
        finally:
            if layout.relay is not None and layout.network is not None:
                # The next such start's relay, made once this backend listens.
                site = RelaySite(
                    layout.network,
                    layout.network_labels,
                    layout.socket_dir_owner,
                    layout.held_ports | {planned.row.config.port or 0},
                )
                listening = (
                    self._socket_dir(planned.row.id)
                    / Path(SERVER_SOCKETS[planned.row.type]).name
                )
                self.relays.want(
                    layout.relay,
                    site,
                    after=lambda: until_exists(listening, self.boot_wait),
                )

    # -- a backend -----------------------------------------------------------------------

    def state(self, row: BackendRow) -> ContainerState | None:
        return self.containers.container_state(self._ref(row))

    def sweep(self) -> AbstractContextManager[None]:
        # An inspect is a local call, and Docker's listing inspects each container
        # anyway: nothing to gain from one reading.
        return contextlib.nullcontext()

    def endpoint(self, row: BackendRow, state: ContainerState) -> str | None:
        if row.type == "pipe":
            return socket_endpoint(row.type, self._socket_dir(row.id))
        # A relayed backend's port is its relay's: the row's, kept across restarts.
        port = state.ports.get(CONTAINER_PORTS[row.type] or 0) or row.config.port
        if port is None:
            return row.endpoint
        scheme = "http" if row.type == "http" else "grpc"
        return f"{scheme}://{row.config.bind_address}:{port}"

    def probe_endpoint(self, row: BackendRow) -> str:
        """Its server's Unix socket, which the controller shares (a host port is out
        of reach from a controller in a container, and a backend without network has
        none of its own); its endpoint for a backend started before servers listened
        there too."""
        socket_url = socket_endpoint(row.type, self._socket_dir(row.id))
        if row.endpoint is None or Path(socket_url.partition("://")[2]).exists():
            return socket_url
        return row.endpoint

    def memory_used(self, row: BackendRow) -> int | None:
        return self.containers.container_memory_used(self._ref(row))

    def service(self, container: str) -> ServiceState | None:
        state = self.containers.container_state(container)
        if state is None:
            return None
        memory = (
            self.containers.container_memory_used(container)
            if state.status == "running"
            else None
        )
        return ServiceState(state, memory)

    def restart(self, row: BackendRow) -> None:
        if row.config.egress_allow is not None:
            self._ensure_egress()
        self.containers.start_container(self._ref(row))

    def _ensure_egress(self) -> None:
        try:
            self.egress.ensure()
        except ContainerEngineError:
            raise
        except Exception as exc:  # BeepHostError, ImageError, OSError
            raise ContainerEngineError(f"the egress proxy: {exc}") from exc

    def remove(self, row: BackendRow) -> None:
        self._remove(row.id, row.container_name)

    def _remove(self, backend_id: str, name: str) -> None:
        """Remove a backend's container, relay, volumes and socket directory, and the
        network of its own that backends had before they shared one; its egress
        credential opens nothing any more."""
        self.egress.unregister(backend_id)
        self.containers.remove_container(relay_name(name))
        self.containers.remove_container(name)
        self.containers.remove_network(name)
        for volume in backend_volumes(name):
            self.containers.remove_volume(volume)
        shutil.rmtree(self._socket_dir(backend_id), ignore_errors=True)

    def logs(self, row: BackendRow, tail: int) -> str:
        return self.containers.container_logs(self._ref(row), tail)

    def copy_in(self, row: BackendRow, path: str, data: bytes) -> None:
        self.containers.put_archive(self._ref(row), path, data)

    def exec_in(
        self, row: BackendRow, command: Sequence[str], user: str, timeout: float
    ) -> tuple[int, str]:
        return self.containers.exec_in(self._ref(row), command, user, timeout)

    # -- reconciliation ------------------------------------------------------------------

    def sandboxes(self) -> list[Sandbox]:
        # Not a relay (no backend id), a build's, a probe's or a fill's: those carry
        # their image's labels, ours among them.
        return [
            Sandbox(state.labels[LABEL_BACKEND_ID], state)
            for state in self.containers.list_containers(self._selector)
            if is_backend_id(state.labels.get(LABEL_BACKEND_ID, ""))
            and LABEL_RELAY_FOR not in state.labels
        ]

    def tidy(self, live: Iterable[BackendRow], used_images: Iterable[str]) -> int:
        """Remove orphan containers and relays, a network no backend has, volumes a
        start a crash cut short left, code volumes of images gone; join a live
        backend (or its relay) that a crash left off its network; rebuild the egress
        proxy's configuration from the live backends (and run the proxy if one of
        them has an allow-list)."""
        rows = {row.id: row for row in live}
        self._restore_egress([r for r in rows.values() if r.status != "stopped"])
        removed = 0
        for state in self.containers.list_containers(self._selector):
            if LABEL_RELAY_FOR in state.labels:
                # A relay stays while its backend's row does (removed with it).
                owner = state.labels[LABEL_RELAY_FOR]
                if owner not in rows and not self.relays.holds(state.id):
                    if LABEL_RELAY_AHEAD not in state.labels:
                        logger.info("removing orphan relay %s", state.name)
                        removed += 1
                    self.containers.remove_container(state.id)
                    shutil.rmtree(self._socket_dir(owner), ignore_errors=True)
                else:
                    self._join_if_off(owner, state)
                continue
            backend_id = state.labels.get(LABEL_BACKEND_ID, "")
            if not is_backend_id(backend_id):
                continue  # a build's (see remove_leftover_builds), a probe's, a fill's
            if backend_id in rows:
                self._join_if_off(backend_id, state)
            else:
                logger.info("removing orphan container %s", state.name)
                self._remove(backend_id, state.name)
                removed += 1
        shared = offline_network(self.settings)
        for network in self.containers.list_networks(self._selector):
            # Kept: the shared one; a backend's own: made before backends shared one.
            if network != shared and not any(
                row.container_name == network for row in rows.values()
            ):
                self.containers.remove_network(network)
        kept = {v for row in rows.values() for v in backend_volumes(row.container_name)}
        codes = self.code_volumes  # shared by backends: removed with their image below
        for volume in self.containers.list_volumes(self._selector):
            if volume not in kept and not codes.owns(volume):
                self.containers.remove_volume(volume)  # a start a crash cut short
        for key in codes.remove_unused(used_images):
            logger.info("removed the code volumes of image %s: the image is gone", key)
        return removed

    def _restore_egress(self, live: list[BackendRow]) -> None:
        """After a restart of the controller: its registrations were in memory. The
        proxy is made in the background (its image may take minutes: readiness does
        not wait for it; a start does, under the proxy's lock)."""
        self.egress.rebuild(live)
        if self.egress.registered:
            self._spawn(lambda: ensure_quietly(self.egress.ensure))

    # -- the egress audit --------------------------------------------------------------

    def egress_refusals(self, row: BackendRow) -> list[EgressRefusal]:
        if row.config.egress_allow is None:
            return []
        # As many as the API may ask for (GET .../egress?limit= is at most 100): the
        # caller keeps the last it wants (the proxy's default of 10 capped every ask).
        return self.egress.refusals(row.id, limit=MAX_REFUSALS)

    def egress_counts(self) -> dict[str, int]:
        return self.egress.counts()

    def relay_counts(self) -> dict[str, int]:
        return self.relays.counts()

    def prepare_egress(self, log: Callable[[str], None]) -> None:
        self.egress.ensure(log)

    def _join_if_off(self, backend_id: str, state: ContainerState) -> None:
        """Join a running backend (or its relay) to its network: a crash cut its start
        short between the container's start and the join, which leaves it unreachable."""
        if state.unjoined_network is None or state.status != "running":
            return
        logger.info("backend %s runs without its network: joining it", backend_id)
        try:
            self.containers.join_network(state.id)
        except ContainerEngineError as exc:  # its port taken meanwhile, say
            logger.warning("backend %s could not join its network: %s", backend_id, exc)

    def remove_leftover_builds(self) -> int:
        """Remove this controller's environment-build containers; how many there were.

        Only at start-up, before the jobs resume: then none of them is a live build,
        only what a controller killed during a build left (the install's container,
        running or exited). Another controller's are never touched. (The image side's
        business, on the engine's containers: not a ``BackendEngine`` call.)
        """
        labels = {
            LABEL_KIND: KIND_ENVIRONMENT_BUILD,
            LABEL_IMAGE_OWNER: self.settings.name,
        }
        leftovers = self.containers.list_containers(labels)
        for state in leftovers:
            logger.info("removing the leftover build container %s", state.name)
            self.containers.remove_container(state.id)
        return len(leftovers)

    # -- images and the shared parts -----------------------------------------------------

    def image_disk_use(self) -> dict[str, int]:
        return self.code_volumes.disk_use()

    def release_images(self, used: Iterable[str]) -> None:
        used = set(used)
        self.relays.keep_images(used)
        self.code_volumes.remove_unused(used)

    def settle(self, timeout: float) -> bool:
        """Remove the relays made ahead (they hold host ports; the next process makes
        its own) and wait for the copies into code volumes under way (one cut short
        would leave its container behind), both within ``timeout``."""
        deadline = time.monotonic() + timeout
        relays_gone = self.relays.close(wait=timeout)
        filled = self.code_volumes.wait_filled(max(0.0, deadline - time.monotonic()))
        return relays_gone and filled

    def remove_shared(self) -> None:
        """Remove the egress proxy, the relays made ahead, the offline network (the
        engine refuses while a container is still on it) and every code volume."""
        self.relays.close()
        try:
            self.egress.remove()
        except ContainerEngineError as exc:
            logger.warning("could not remove the egress proxy: %s", exc)
        try:
            self.containers.remove_network(offline_network(self.settings))
        except ContainerEngineError as exc:
            logger.warning("could not remove the offline network: %s", exc)
        self.code_volumes.remove_all(wait=CODE_FILL_WAIT)
