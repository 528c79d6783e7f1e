"""Relays made before their backends: a cold start of an http or rpc backend without
network takes one instead of creating and starting its own.

Such a backend's port is published by a relay, a second container (docker_plan.py).
Docker creates and starts the two side by side, and bench/controller.py measures two
containers started at once at about twice one container's start: more than the rest
of a cold start adds. So after each such start the engine makes the next one's relay
in the background: a backend id drawn ahead, its socket directory, a host port, and
the relay container created, started and on the offline network. A start whose relay
would be the same (its image, limits, user, volumes, address: all but what names its
backend) takes the member, with its id and port, and only its backend is made.

Members are named and labelled for the backends they will serve (``LABEL_RELAY_FOR``,
an id no row has yet) plus ``LABEL_RELAY_AHEAD``: the tidy at start-up removes them with
their socket directories, and the new process makes its own.
"""

import logging
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from beephost_controller.engine.docker_launch import make_socket_dir, start_publishing
from beephost_controller.engine.docker_plan import (
    LABEL_RELAY_FOR,
    PORT_ATTEMPTS,
    container_name,
    relay_name,
)
from beephost_controller.ports import (
    RELAY_OUTCOMES,
    BackendContainers,
    ContainerEngineError,
)
from beephost_controller.specs import ContainerSpec

logger = logging.getLogger(__name__)

#: On a relay made ahead of its backend (one with no row is a member no start took).
LABEL_RELAY_AHEAD = "io.beephost.relay-ahead"
#: Kinds of relay the pool keeps members for at once (the most recently wanted).
KEYS = 4
#: Seconds a start waits for a relay of its kind that is being made (its start).
MAKING_WAIT = 2.0
#: Seconds the removal of an image's members (or all, at shutdown) waits for those
#: being made to be made and removed: they mount the code volumes removed next.
GONE_WAIT = 30.0
#: Seconds a relay made ahead waits for the backend launched before it to listen.
BOOT_WAIT = 5.0
BOOT_POLL = 0.01


@dataclass(frozen=True)
class Member:
    """A relay made ahead: the backend it will publish, its host port, its container."""

    backend_id: str
    port: int
    container_id: str


@dataclass(frozen=True)
class RelaySite:
    """Where a start's relay goes, beside its spec: the offline network (and its
    labels), who owns the socket directory it shares with its backend, and the host
    ports backends hold (an exited one's too: its restart needs it back)."""

    network: str
    network_labels: Mapping[str, str]
    socket_owner: tuple[int, int] | None
    held_ports: frozenset[int]


def relay_key(relay: ContainerSpec) -> ContainerSpec:
    """``relay`` with what names its backend blanked (name, ``LABEL_RELAY_FOR``, socket
    directory, host port), and its image's code volumes: two starts with equal keys
    need the same relay but for those. Code volumes only make the relay's own start
    faster (the same files as its image's): the first starts of an image run without
    them while they are copied, and a relay made then serves the starts after."""
    ((container_port, (host, _)),) = relay.ports.items()
    labels = {k: v for k, v in relay.labels.items() if k != LABEL_RELAY_FOR}
    return replace(
        relay,
        name="",
        labels=labels,
        socket_dir=None,
        ports={container_port: (host, None)},
        shared_volumes={},
    )


def until_exists(path: Path, timeout: float) -> None:
    """Return once ``path`` exists (a server's socket: it listens), or after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(BOOT_POLL)


class RelayPool:
    """Members by key, ``size`` of each of the ``KEYS`` keys wanted last.

    Args:
        containers: The engine's containers.
        settings_name: The controller's name (containers are named by it).
        socket_root: Where backends' socket directories are.
        draw_id: A new backend id.
        pick_port: A free host port on an address, none of a set.
        spawn: Runs a refill in the background.
    """

    def __init__(
        self,
        containers: BackendContainers,
        *,
        size: int,
        settings_name: str,
        socket_root: Path,
        draw_id: Callable[[], str],
        pick_port: Callable[[str, set[int]], int],
        spawn: Callable[[Callable[[], None]], None],
    ) -> None:
        self.containers = containers
        self.size = size
        self.settings_name = settings_name
        self.socket_root = socket_root
        self._draw_id = draw_id
        self._pick_port = pick_port
        self._spawn = spawn
        self._lock = threading.Condition()
        #: key -> its members, the key wanted last at the end
        self._members: list[tuple[ContainerSpec, list[Member]]] = []
        self._filling: list[ContainerSpec] = []
        #: Keys a member is being made of now (past ``after``), until it is kept or,
        #: its key gone, removed again by its maker.
        self._making: list[ContainerSpec] = []
        self._closed = False
        self._counts = dict.fromkeys(RELAY_OUTCOMES, 0)

    def _entry(self, key: ContainerSpec) -> tuple[ContainerSpec, list[Member]] | None:
        """``key``'s entry, if it is kept (call with the lock held)."""
        return next((e for e in self._members if e[0] == key), None)

    def counts(self) -> dict[str, int]:
        """How many relays were made, taken, missed and discarded so far
        (``RELAY_OUTCOMES``: a miss is a relayed start that found none of its kind;
        a discarded member was removed without serving a backend: its kind no longer
        kept, a start refused after its plan, its image gone, shutdown)."""
        with self._lock:
            return dict(self._counts)

    def ports(self) -> set[int]:
        """The host ports members hold (no other start may pick one)."""
        with self._lock:
            return {m.port for _, members in self._members for m in members}

    def holds(self, container_id: str) -> bool:
        """Whether ``container_id`` is a member's (not an orphan to tidy)."""
        with self._lock:
            return any(
                m.container_id == container_id
                for _, members in self._members
                for m in members
            )

    def take(self, key: ContainerSpec) -> Member | None:
        """A member for a start whose relay has ``key``: one ready, or the one being
        made now (waited for up to ``MAKING_WAIT`` s: making a second relay beside it
        would take longer)."""
        if self.size <= 0:
            return None
        deadline = time.monotonic() + MAKING_WAIT
        with self._lock:
            while True:
                for held, members in self._members:
                    if held == key and members:
                        self._counts["taken"] += 1
                        return members.pop(0)
                left = deadline - time.monotonic()
                if key not in self._making or left <= 0:
                    self._counts["missed"] += 1
                    return None
                self._lock.wait(left)

    def want(
        self,
        relay: ContainerSpec,
        site: RelaySite,
        after: Callable[[], None] = lambda: None,
    ) -> None:
        """Keep ``size`` members of ``relay``'s key, made like it at ``site`` in the
        background once ``after`` returns (the boot of the backend just launched,
        which a relay's start beside it would slow); the least recently wanted key
        beyond ``KEYS`` loses its members."""
        if self.size <= 0:
            return
        key = relay_key(relay)
        dropped: list[Member] = []
        with self._lock:
            if self._closed:
                return
            entry = self._entry(key)
            if entry is not None:
                self._members.remove(entry)
            else:
                entry = (key, [])
            self._members.append(entry)
            while len(self._members) > KEYS:
                _, old = self._members.pop(0)
                dropped += old
            filling = key in self._filling
            if not filling:
                self._filling.append(key)
        if dropped:  # not in the start's own time
            self._spawn(lambda: self._remove_all(dropped))
        if not filling:
            self._spawn(lambda: self._fill(relay, site, after))

    def _fill(
        self, relay: ContainerSpec, site: RelaySite, after: Callable[[], None]
    ) -> None:
        key = relay_key(relay)
        try:
            after()
            while True:
                with self._lock:
                    entry = self._entry(key)
                    if self._closed or entry is None or len(entry[1]) >= self.size:
                        return
                    self._making.append(key)
                try:
                    member = self._make(relay, site)
                except BaseException:
                    with self._lock:
                        self._made(key)
                    raise
                with self._lock:  # one step: a start waiting for it finds it
                    self._counts["made"] += 1
                    entry = self._entry(key)
                    kept = entry is not None and not self._closed
                    if kept and entry is not None:
                        entry[1].append(member)
                        self._made(key)
                if not kept:
                    # Still being made until it is removed: keep_images and close
                    # wait for that before its image's code volumes go.
                    try:
                        self.remove(member)
                    finally:
                        with self._lock:
                            self._made(key)
                    return
        except ContainerEngineError as exc:
            logger.warning("could not make a relay ahead of its backend: %s", exc)
        finally:
            with self._lock:
                self._filling.remove(key)

    def _made(self, key: ContainerSpec) -> None:
        """A member of ``key`` is no longer being made (call with the lock held)."""
        self._making.remove(key)
        self._lock.notify_all()

    def keep_images(self, used: set[str]) -> None:
        """Remove the members of images no environment uses any more, those being
        made included (their code volumes, which they may mount, are going next)."""
        with self._lock:
            gone = [e for e in self._members if e[0].image not in used]
            for entry in gone:
                self._members.remove(entry)
        self._remove_all([m for _, members in gone for m in members])
        # A member being made finds its key gone and removes itself: wait for that.
        self._wait_made(lambda key: key.image not in used)

    def _wait_made(
        self, of: Callable[[ContainerSpec], bool], wait: float = GONE_WAIT
    ) -> bool:
        """Wait (up to ``wait`` s) until no member of a key ``of`` picks is being
        made or removed by its maker; whether none is."""
        deadline = time.monotonic() + wait
        with self._lock:
            while any(of(key) for key in self._making):
                left = deadline - time.monotonic()
                if left <= 0:
                    logger.warning(
                        "relays made ahead still being made after %g s", wait
                    )
                    return False
                self._lock.wait(left)
        return True

    def _make(self, relay: ContainerSpec, site: RelaySite) -> Member:
        """A relay like ``relay`` for a backend id drawn now: its socket directory,
        then the relay started on a free port (a port taken meanwhile is retried with
        another).

        Raises:
            ContainerEngineError: What was made is removed.
        """
        backend_id = self._draw_id()
        name = container_name(self.settings_name, backend_id)
        socket_dir = self.socket_root / backend_id
        ((container_port, (host, _)),) = relay.ports.items()
        taken = self.ports() | site.held_ports
        self.containers.ensure_network(site.network, site.network_labels)
        labels = {
            **relay.labels,
            LABEL_RELAY_FOR: backend_id,
            LABEL_RELAY_AHEAD: "true",
        }

        def create(port: int | None) -> str:
            spec = replace(
                relay,
                name=relay_name(name),
                labels=labels,
                socket_dir=socket_dir,
                ports={container_port: (host, port)},
            )
            return self.containers.create_container(spec)

        try:
            make_socket_dir(socket_dir, site.socket_owner)
            port, container_id, _ = start_publishing(
                self.containers,
                create,
                self._pick_port(host, taken),
                lambda tried: self._pick_port(host, tried),
                attempts=PORT_ATTEMPTS,
                taken=taken,
                clock=time.monotonic,
            )
        except (ContainerEngineError, OSError) as exc:
            self._remove_parts(relay_name(name), socket_dir)
            if isinstance(exc, ContainerEngineError):
                raise
            raise ContainerEngineError(f"a relay's socket directory: {exc}") from exc
        assert port is not None  # a port was picked, and every retry picks one
        return Member(backend_id, port, container_id)

    def remove(self, member: Member) -> None:
        """Remove a member that no start took: its relay and socket directory."""
        with self._lock:
            self._counts["discarded"] += 1
        self._remove_parts(member.container_id, self.socket_root / member.backend_id)

    def _remove_parts(self, container: str, socket_dir: Path) -> None:
        try:
            self.containers.remove_container(container)
        except ContainerEngineError as exc:  # left to the tidy at the next start-up
            logger.warning("could not remove pooled relay %s: %s", container, exc)
        shutil.rmtree(socket_dir, ignore_errors=True)

    def close(self, wait: float = GONE_WAIT) -> bool:
        """Remove every member, those being made included (waiting up to ``wait`` s
        for them: each maker removes its own); make none any more. Whether none is
        still being made."""
        with self._lock:
            self._closed = True
            members = [m for _, held in self._members for m in held]
            self._members.clear()
        self._remove_all(members)
        return self._wait_made(lambda key: True, wait)

    def _remove_all(self, members: list[Member]) -> None:
        for member in members:
            self.remove(member)
