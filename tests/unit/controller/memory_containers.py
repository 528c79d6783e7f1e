"""An in-memory BackendContainers for tests of the controller's pure logic.

Real containers are tested in tests/e2e against the engine; this one only records
specs and plays back states.
"""

from collections.abc import Mapping
from dataclasses import replace

from beephost_controller.ports import ContainerSpec, ContainerState


class MemoryContainers:
    def __init__(self, *, healthy: bool = True) -> None:
        self.containers: dict[str, ContainerState] = {}
        self.networks: dict[str, Mapping[str, str]] = {}
        self.specs: dict[str, ContainerSpec] = {}
        self.starts: list[str] = []
        #: Health right after a start: Docker's first check comes later.
        self.healthy = healthy

    def exit(self, name: str, exit_code: int, *, oom: bool = False) -> None:
        """The container's process ended (crash, kill or OOM)."""
        self.containers[name] = replace(
            self.containers[name],
            status="exited",
            health=None,
            exit_code=exit_code,
            oom_killed=oom,
        )

    def create_network(self, name: str, labels: Mapping[str, str]) -> None:
        self.networks[name] = dict(labels)

    def remove_network(self, name: str) -> None:
        self.networks.pop(name, None)

    def create_container(self, spec: ContainerSpec) -> str:
        cid = f"c{len(self.specs)}"
        self.specs[spec.name] = spec
        self.containers[spec.name] = ContainerState(
            cid,
            spec.name,
            dict(spec.labels),
            "created",
            None,
            0,
            False,
            0,
            {5678: 40000},
        )
        return cid

    def _find(self, ref: str) -> str | None:
        return next((n for n, s in self.containers.items() if ref in (n, s.id)), None)

    def start_container(self, ref: str) -> None:
        name = self._find(ref)
        assert name is not None
        self.starts.append(name)
        self.containers[name] = replace(
            self.containers[name],
            status="running",
            health="healthy" if self.healthy else "starting",
            exit_code=0,
            oom_killed=False,
        )

    def container_state(self, ref: str) -> ContainerState | None:
        name = self._find(ref)
        return None if name is None else self.containers[name]

    def remove_container(self, ref: str) -> None:
        name = self._find(ref)
        if name is not None:
            del self.containers[name]

    def container_logs(self, ref: str, tail: int) -> str:
        return ""

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerState]:
        return [
            s
            for s in self.containers.values()
            if all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def list_networks(self, labels: Mapping[str, str]) -> list[str]:
        return [
            n
            for n, lab in self.networks.items()
            if all(lab.get(k) == v for k, v in labels.items())
        ]
