"""``MemoryBackends``: a ``BackendEngine`` with no engine under it, for the backend use
cases' own tests (the Docker engine's are tested over ``MemoryContainers``)."""

import contextlib
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace

from beephost_controller.ports import (
    ContainerGone,
    ContainerState,
    EgressRefusal,
    LaunchFailed,
    Record,
    Sandbox,
    ServiceState,
)
from beephost_controller.rows import (
    BackendConfig,
    BackendRow,
    BackendUpdate,
    EnvironmentRow,
)
from beephost_controller.starts import (
    BackendPlan,
    BackendRequest,
    Minted,
    ready_image,
    resolved_options,
    start_egress,
)


class MemoryBackends:
    """A ``BackendEngine`` whose sandboxes are states in a dict, by backend id: a
    launched one runs, healthy unless ``healthy=False``; ``exit`` ends one.

    Its lifetimes are the request's own (no controller defaults), its endpoints
    ``memory://<id>``; ``refuse`` makes the next launch fail with that error.
    """

    def __init__(
        self, *, healthy: bool = True, clock: Callable[[], float] = time.time
    ) -> None:
        self.healthy = healthy
        self.clock = clock
        #: Backend id -> its sandbox's state.
        self.running: dict[str, ContainerState] = {}
        self.restarts: list[str] = []
        self.removed: list[str] = []
        #: Plans let go of before their launch (``release``).
        self.released: list[str] = []
        self.output: dict[str, str] = {}
        self.copies: list[tuple[str, str, bytes]] = []
        self.execs: list[tuple[str, tuple[str, ...], str]] = []
        #: The next launch fails with it (and leaves its sandbox if not ``undone``).
        self.refuse: LaunchFailed | None = None
        self.shared_removed = False
        #: Backend id -> the bytes its sandbox uses (unknown when missing).
        self.memory: dict[str, int] = {}
        #: Container name -> a backend it did not start (``service``).
        self.services: dict[str, ServiceState] = {}
        #: What ``egress_refusals`` answers, by backend id, and ``egress_counts``.
        self.refusals: dict[str, list[EgressRefusal]] = {}
        self.egress_decisions: dict[str, int] = {}
        self.relay_outcomes: dict[str, int] = {}
        #: How many times the egress proxy was made ready ahead of a start.
        self.egress_prepared = 0
        #: Called by a launch before its sandbox exists, with its row: what a
        #: request that came while the engine worked (publishing an image) does.
        self.while_launching: Callable[[BackendRow], None] = lambda _: None
        #: How many sweeps began (a look at every backend: supervisor, listing).
        self.sweeps = 0
        self._ids = itertools.count()

    def exit(self, backend_id: str, exit_code: int, *, oom: bool = False) -> None:
        """The sandbox's process ended (crash, kill or OOM)."""
        self.running[backend_id] = replace(
            self.running[backend_id],
            status="exited",
            health=None,
            exit_code=exit_code,
            oom_killed=oom,
        )

    def plan(
        self,
        request: BackendRequest,
        environment: EnvironmentRow,
        minted: Minted,
        held_ports: Mapping[int, str],
    ) -> BackendPlan:
        ready_image(environment)
        # Records an allow-list as asked (the real engines refuse one until the
        # egress proxy exists): the use cases' tests read the policy a row keeps.
        network, allow = start_egress(request, environment)
        config = BackendConfig(
            request.port,
            request.bind_address or "127.0.0.1",
            request.limits,
            resolved_options(request.options, network),
            ttl=request.ttl,
            idle_timeout=request.idle_timeout,
            pooled=request.pooled,
            egress_allow=allow,
        )
        row = BackendRow(
            id=minted.backend_id,
            environment=environment.name,
            type=request.type,
            status="starting",
            container_name=f"memory-{minted.backend_id}",
            token=minted.token,
            config=config,
        )
        return BackendPlan(row, None, None)

    def release(self, planned: BackendPlan) -> None:
        self.released.append(planned.row.id)

    def launch(self, planned: BackendPlan, record: Record) -> None:
        row = planned.row
        self.while_launching(row)
        sandbox_id = f"m{next(self._ids)}"
        self.running[row.id] = ContainerState(
            sandbox_id,
            row.container_name,
            {},
            "running",
            "healthy" if self.healthy else "starting",
            0,
            False,
            0,
            {},
        )
        record(BackendUpdate(container_id=sandbox_id))
        refused, self.refuse = self.refuse, None
        if refused is not None:
            if refused.undone:
                del self.running[row.id]
            raise refused
        record(BackendUpdate(created_at=self.clock()))

    def state(self, row: BackendRow) -> ContainerState | None:
        return self.running.get(row.id)

    @contextlib.contextmanager
    def sweep(self) -> Iterator[None]:
        self.sweeps += 1
        yield

    def endpoint(self, row: BackendRow, state: ContainerState) -> str | None:
        return self.probe_endpoint(row)

    def probe_endpoint(self, row: BackendRow) -> str:
        return f"memory://{row.id}"

    def memory_used(self, row: BackendRow) -> int | None:
        return self.memory.get(row.id) if row.id in self.running else None

    def service(self, container: str) -> ServiceState | None:
        return self.services.get(container)

    def restart(self, row: BackendRow) -> None:
        self.restarts.append(row.id)
        state = self.running[row.id]
        self.running[row.id] = replace(state, status="running", health="healthy")

    def remove(self, row: BackendRow) -> None:
        if self.running.pop(row.id, None) is not None:
            self.removed.append(row.id)

    def logs(self, row: BackendRow, tail: int) -> str:
        if row.id not in self.running:
            raise ContainerGone(f"no sandbox of {row.id}")
        return "".join(self.output.get(row.id, "").splitlines(True)[-tail:])

    def copy_in(self, row: BackendRow, path: str, data: bytes) -> None:
        self.copies.append((row.id, path, data))

    def exec_in(
        self, row: BackendRow, command: Sequence[str], user: str, timeout: float
    ) -> tuple[int, str]:
        self.execs.append((row.id, tuple(command), user))
        return 0, ""

    def sandboxes(self) -> list[Sandbox]:
        return [Sandbox(i, state) for i, state in self.running.items()]

    def tidy(self, live: Iterable[BackendRow], used_images: Iterable[str]) -> int:
        kept = {row.id for row in live}
        orphans = [i for i in self.running if i not in kept]
        for backend_id in orphans:
            del self.running[backend_id]
        return len(orphans)

    def image_disk_use(self) -> dict[str, int]:
        return {}

    def release_images(self, used: Iterable[str]) -> None:
        return None

    def settle(self, timeout: float) -> bool:
        return True

    def remove_shared(self) -> None:
        self.shared_removed = True

    def egress_refusals(self, row: BackendRow) -> list[EgressRefusal]:
        return list(self.refusals.get(row.id, ()))

    def egress_counts(self) -> dict[str, int]:
        return dict(self.egress_decisions)

    def relay_counts(self) -> dict[str, int]:
        return dict(self.relay_outcomes)

    def prepare_egress(self, log: Callable[[str], None]) -> None:
        self.egress_prepared += 1
        log("egress proxy ready")
