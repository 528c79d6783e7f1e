"""In-memory ``ImageBuilder`` and ``BackendContainers``: the use cases without an engine."""

import io
import itertools
import socket
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from beephost_controller.engine.docker_egress import PROXY_SOCKET_DIR
from beephost_controller.images.keys import environment_code, environment_tag
from beephost_controller.images.labels import owner_labels
from beephost_controller.ports import (
    BaseImageRef,
    BuildLog,
    ContainerEngineError,
    ContainerGone,
    ContainerState,
    ImageInfo,
    PortInUse,
)
from beephost_controller.resolver import Lock
from beephost_controller.settings import Settings
from beephost_controller.specs import ContainerSpec, RunSpec

#: What MemoryImageBuilder logs for a build, one line per step.
BUILD_STEPS = (
    "Step 1/3 : FROM base",
    "Step 2/3 : RUN uv pip install",
    "Step 3/3 : COPY",
)


class MemoryImageBuilder:
    """An ``ImageBuilder`` without an engine: images are tags in a set.

    An environment's tag is DockerImageBuilder's content address, of ``code_version``
    (and ``sdk_version`` for admin images). A build logs BUILD_STEPS, ``step_seconds``
    apart (a live log to follow), then fails with ``fail`` if it is set, else records
    the tag.
    """

    def __init__(
        self,
        *,
        fail: str | None = None,
        step_seconds: float = 0.0,
        code_version: str = "memory",
        sdk_version: str | None = None,
        repository: str = Settings.model_fields["environment_repository"].default,
        owner: str = Settings.model_fields["name"].default,
    ) -> None:
        #: The controller whose images these are (io.beephost.image.owner).
        self.owner = owner
        self.code_version = code_version
        self.sdk_version = sdk_version
        self.repository = repository
        self.fail = fail
        self.step_seconds = step_seconds
        self.images: set[str] = set()
        #: Every tag built, in order (an equal environment builds nothing).
        self.builds: list[str] = []
        #: Tags a container uses: removing them fails, as the engine refuses.
        self.in_use: set[str] = set()
        #: The size each image reports.
        self.image_size = 200 << 20
        #: The egress proxy's image, once built (never an environment image).
        self.proxy_images: set[str] = set()
        #: What ``ensure_egress_proxy`` answers.
        self.egress_proxy_tag = "beephost/egress-proxy:memory"

    def ensure_base(self, python: str, log: Callable[[str], None]) -> BaseImageRef:
        log(f"importing rootfs for CPython {python}")
        return BaseImageRef(
            python,
            f"beephost/python:{python}",
            f"sha256:base{python}",
            f"{python}.0",
            "debian",
        )

    def ensure_environment(
        self, *, base: BaseImageRef, lock: Lock, admin: bool, log: BuildLog
    ) -> str:
        code = environment_code(self.code_version, admin=admin, sdk=self.sdk_version)
        tag = environment_tag(self.repository, base.image_id, lock.digest, code)
        if tag in self.images:
            log(f"image {tag} exists: equal environment, nothing to build")
            return tag
        log(f"building {tag}")
        self.build_environment(tag, lock, admin, log)
        return tag

    def build_environment(
        self, tag: str, lock: Lock, admin: bool, log: Callable[[str], None]
    ) -> None:
        """The build itself (a test's subclass may watch it)."""
        for step in BUILD_STEPS:
            time.sleep(self.step_seconds)
            log(step)
        if self.fail:
            raise RuntimeError(self.fail)
        log(f"installing {lock.text.count('==')} packages")
        self.builds.append(tag)
        self.images.add(tag)

    def ensure_egress_proxy(self, log: Callable[[str], None]) -> str:
        tag = self.egress_proxy_tag
        if tag in self.proxy_images:
            log(f"egress proxy image {tag} (cached)")
            return tag
        log(f"building the egress proxy image {tag}")
        self.proxy_images.add(tag)
        self.builds.append(tag)
        return tag

    def environment_images(self) -> list[ImageInfo]:
        return [
            ImageInfo(
                id=f"sha256:{tag}",
                tags=(tag,),
                labels=owner_labels(self.owner),
                size=self.image_size,
            )
            for tag in sorted(self.images)
        ]

    def remove_environment_image(self, image: ImageInfo) -> None:
        for tag in image.tags:
            if tag in self.in_use:
                raise ContainerEngineError(f"remove {tag}: a container uses it")
            self.images.discard(tag)


class SetClock:
    """A clock that stands still until a test moves ``now`` (lifetimes, idleness)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class MemoryContainers:
    """A ``BackendContainers`` without an engine: it records specs and plays back
    states (a started container is running, healthy unless ``healthy=False``). As
    Docker, it refuses to remove a volume a container (running or not) mounts."""

    def __init__(self, *, healthy: bool = True) -> None:
        self.containers: dict[str, ContainerState] = {}
        #: What each container (by name) printed, for ``container_logs``.
        self.output: dict[str, str] = {}
        #: Container name -> the bytes it uses while it runs.
        self.memory: dict[str, int] = {}
        self.networks: dict[str, Mapping[str, str]] = {}
        #: The egress proxies' sockets, by container name (``_serve_egress``).
        self.listening: dict[str, socket.socket] = {}
        #: Each network's gateways (``network_gateways``): Docker's default bridge's.
        self.gateways: dict[str, list[str]] = {"bridge": ["172.17.0.1"]}
        self.volumes: dict[str, Mapping[str, str]] = {}
        self.specs: dict[str, ContainerSpec] = {}
        self.starts: list[str] = []
        #: Host ports something else holds: a start publishing one fails, as the
        #: engine's does (``PortInUse``).
        self.ports_in_use: set[int] = set()
        #: Containers joined to their network by ``join_network`` (not by a start).
        self.joins: list[str] = []
        self.archives: list[tuple[str, str, bytes]] = []
        self.execs: list[tuple[str, tuple[str, ...], str]] = []
        #: What ``exec_in`` answers for a command: (exit status, output).
        self.exec_answer: Callable[[Sequence[str]], tuple[int, str]] = lambda _: (0, "")
        #: When set, each container has files under ``<files>/<its name>``: a
        #: ``put_archive`` unpacks there, as the engine copies into a container.
        self.files: Path | None = None
        #: When set (with ``files``), ``exec_in`` answers with it instead, given the
        #: container's files: a test plays what runs in the container on them.
        self.exec_files: Callable[[Path, Sequence[str]], tuple[int, str]] | None = None
        #: Health right after a start: Docker's first check comes later.
        self.healthy = healthy
        #: The engine's storage driver, and its images: tag -> id.
        self.driver = "overlay2"
        self.images: dict[str, str] = {}
        #: Each ``fill_volumes``: (image, volume -> directory).
        self.fills: list[tuple[str, dict[str, str]]] = []
        #: What each fill's check says (code volumes: the bytes the copy takes).
        self.fill_output = "1048576\n"
        self._ids = itertools.count()

    def exit(self, name: str, exit_code: int, *, oom: bool = False) -> None:
        """The container's process ended (crash, kill or OOM)."""
        self.containers[name] = replace(
            self.containers[name],
            status="exited",
            health=None,
            exit_code=exit_code,
            oom_killed=oom,
        )

    def report_idle(self, name: str, seconds: float | None) -> None:
        """What the container's health check says of its server's idleness."""
        self.containers[name] = replace(self.containers[name], idle_seconds=seconds)

    def ensure_network(self, name: str, labels: Mapping[str, str]) -> None:
        self.networks.setdefault(name, dict(labels))

    def remove_network(self, name: str) -> None:
        self.networks.pop(name, None)

    def create_volume(self, name: str, labels: Mapping[str, str]) -> None:
        self.volumes[name] = dict(labels)

    def remove_volume(self, name: str) -> None:
        users = [
            container
            for container, spec in self.specs.items()  # a removed one's stays here
            if container in self.containers
            and (name in spec.volumes or name in spec.shared_volumes)
        ]
        if users:
            raise ContainerEngineError(f"remove volume {name}: in use by {users}")
        self.volumes.pop(name, None)

    def list_volumes(self, labels: Mapping[str, str]) -> dict[str, dict[str, str]]:
        return {
            n: dict(lab)
            for n, lab in self.volumes.items()
            if all(lab.get(k) == v for k, v in labels.items())
        }

    def storage_driver(self) -> str:
        return self.driver

    def image_id(self, ref: str) -> str | None:
        if ref in self.images:
            return self.images[ref]
        ids = {
            i for i in self.images.values() if i.removeprefix("sha256:").startswith(ref)
        }
        return ids.pop() if len(ids) == 1 else None

    def fill_volumes(self, fill: RunSpec) -> str:
        if self.image_id(fill.image) is None:
            raise ContainerEngineError(f"no image {fill.image}")
        for volume in fill.volumes:
            if volume not in self.volumes:
                raise ContainerEngineError(f"no volume {volume}")
        self.fills.append((fill.image, dict(fill.volumes)))
        return self.fill_output

    def create_container(self, spec: ContainerSpec) -> str:
        for volume in [*spec.volumes, *spec.shared_volumes]:
            if volume not in self.volumes:
                raise ContainerEngineError(f"no volume {volume}")
        cid = f"c{next(self._ids)}"  # atomic: the pool filler starts in a thread
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
            unjoined_network=spec.network,
        )
        return cid

    def _find(self, ref: str) -> str | None:
        return next((n for n, s in self.containers.items() if ref in (n, s.id)), None)

    def start_container(self, ref: str) -> None:
        name = self._find(ref)
        if name is None:
            raise ContainerEngineError(f"no container {ref}")
        spec = self.specs.get(name)
        for _, port in spec.ports.values() if spec else ():
            if port in self.ports_in_use:
                raise PortInUse(f"Bind for 127.0.0.1:{port} failed")
        self.starts.append(name)
        self._serve_egress(spec)
        self.containers[name] = replace(
            self.containers[name],
            unjoined_network=None,
            status="running",
            health="healthy" if self.healthy else "starting",
            exit_code=0,
            oom_killed=False,
        )

    def _serve_egress(self, spec: ContainerSpec | None) -> None:
        """An egress proxy (a container with the proxy's socket directory mounted
        read-write) makes its socket when it starts, as ``serve.py`` does: a Unix
        socket that accepts and answers nothing."""
        if spec is None:
            return
        for directory, (target, mode) in spec.egress.items():
            if target == PROXY_SOCKET_DIR and mode == "rw":
                path = directory / "proxy.sock"
                path.unlink(missing_ok=True)
                server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                server.bind(str(path))
                server.listen()
                self.listening[spec.name] = server

    def close(self) -> None:
        """Close the sockets of the egress proxies it serves."""
        for server in self.listening.values():
            server.close()
        self.listening.clear()

    def join_network(self, ref: str) -> None:
        name = self._find(ref)
        if name is None:
            raise ContainerEngineError(f"no container {ref}")
        self.joins.append(name)
        self.containers[name] = replace(self.containers[name], unjoined_network=None)

    def container_state(self, ref: str) -> ContainerState | None:
        name = self._find(ref)
        return None if name is None else self.containers[name]

    def container_memory_used(self, ref: str) -> int | None:
        name = self._find(ref)
        running = name is not None and self.containers[name].status == "running"
        return self.memory.get(name) if running and name is not None else None

    def remove_container(self, ref: str) -> None:
        name = self._find(ref)
        if name is not None:
            del self.containers[name]
            server = self.listening.pop(name, None)
            if server is not None:
                server.close()

    def container_logs(self, ref: str, tail: int, *, timestamps: bool = False) -> str:
        name = self._find(ref)
        if name is None:
            raise ContainerGone(f"logs of container {ref}: No such container")
        lines = self.output.get(name, "").splitlines(keepends=True)
        return "".join(lines[-tail:])

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerState]:
        return [
            s
            for s in self.containers.values()
            if all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def network_gateways(self, name: str) -> list[str]:
        if name not in self.gateways:
            raise ContainerEngineError(f"no network {name}")
        return list(self.gateways[name])

    def list_networks(self, labels: Mapping[str, str]) -> list[str]:
        return [
            n
            for n, lab in self.networks.items()
            if all(lab.get(k) == v for k, v in labels.items())
        ]

    def root(self, ref: str) -> Path:
        """The directory holding the container's files (``files`` must be set).

        Raises:
            ContainerEngineError: No such container.
        """
        name = self._find(ref)
        if name is None:
            raise ContainerEngineError(f"no container {ref}")
        assert self.files is not None, "MemoryContainers.files is not set"
        return self.files / name

    def put_archive(self, ref: str, path: str, data: bytes) -> None:
        if self._find(ref) is None:
            raise ContainerEngineError(f"no container {ref}")
        self.archives.append((ref, path, data))
        if self.files is not None:
            target = self.root(ref) / path.lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                # "data": no absolute paths, links out or devices, as a copy into a
                # container's volume allows; owners become the test's user.
                archive.extractall(target, filter="data")

    def exec_in(
        self, ref: str, command: Sequence[str], user: str, timeout: float
    ) -> tuple[int, str]:
        if self._find(ref) is None:
            raise ContainerEngineError(f"no container {ref}")
        self.execs.append((ref, tuple(command), user))
        if self.files is not None and self.exec_files is not None:
            return self.exec_files(self.root(ref), command)
        return self.exec_answer(command)
