"""``DockerContainers``: the ``BackendContainers`` on docker-py (backend containers and networks)."""

import ipaddress
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import docker
import docker.errors
import requests.exceptions

from beephost_controller.engine.docker_errors import found_or_none as _found_or_none
from beephost_controller.engine.docker_errors import label_filters as _label_filters
from beephost_controller.engine.docker_errors import mapped_errors as _mapped_errors
from beephost_controller.engine.docker_images import DockerEngine
from beephost_controller.ports import (
    ContainerEngineError,
    ContainerGone,
    ContainerState,
    ImageNotFoundError,
)
from beephost_controller.specs import ContainerSpec, RunSpec

logger = logging.getLogger(__name__)

#: How long a remove waits for another removal of the same container to end.
REMOVAL_WAIT = 60.0
#: Seconds between Docker's health checks of a backend. Each execs a Python process in
#: the container (70-140 ms of CPU): at 2 s a host of 20 sandboxes spent more than a
#: core on them, and the first one competed with the server's own start. Readiness does
#: not wait for it (the controller's probe), so it only bounds how soon a hung server
#: shows `unhealthy` (three misses: 15 s), as in the images' own HEALTHCHECK.
HEALTHCHECK_INTERVAL = 5.0


def _container_state(container: Any) -> ContainerState:
    attrs: dict[str, Any] = container.attrs
    state: dict[str, Any] = attrs.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    ports: dict[int, int] = {}
    for spec, hosts in (
        (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    ).items():
        for host in hosts or ():
            ports[int(str(spec).split("/")[0])] = int(host["HostPort"])
    return ContainerState(
        id=str(container.id),
        name=str(attrs.get("Name", "")).lstrip("/"),
        labels={str(k): str(v) for k, v in (container.labels or {}).items()},
        status=str(state.get("Status", "unknown")),
        health=str(health) if health else None,
        exit_code=int(state.get("ExitCode") or 0),
        oom_killed=bool(state.get("OOMKilled")),
        restart_count=int(attrs.get("RestartCount") or 0),
        ports=ports,
        idle_seconds=reported_idle((state.get("Health") or {}).get("Log") or []),
        unjoined_network=unjoined_network(attrs),
    )


def unjoined_network(attrs: Mapping[str, Any]) -> str | None:
    """The network a container was created for and has not joined (its join put off
    until it has started, ``DockerContainers.create_container``), if any."""
    mode = str((attrs.get("HostConfig") or {}).get("NetworkMode") or "")
    if mode in ("", "none", "host") or mode.startswith("container:"):
        return None
    network = "bridge" if mode == "default" else mode
    joined = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    return None if network in joined else network


def network_gateways(attrs: Mapping[str, Any]) -> list[str]:
    """A network's gateways from its inspection: each IPAM config's ``Gateway``, or
    for one that names none, its subnet's first address (what the engine gives it)."""
    found = []
    for config in (attrs.get("IPAM") or {}).get("Config") or []:
        gateway = str(config.get("Gateway") or "").split("/")[0]
        subnet = str(config.get("Subnet") or "")
        if gateway:
            found.append(gateway)
        elif subnet:
            network = ipaddress.ip_network(subnet, strict=False)
            found.append(str(network.network_address + 1))
    return found


_IDLE = re.compile(r"\bidle=(\d+)\b")


def reported_idle(health_log: list[dict[str, Any]]) -> float | None:
    """The idle seconds the last health check printed (``idle=N``), if any."""
    if not health_log:
        return None
    found = _IDLE.search(str(health_log[-1].get("Output") or ""))
    return float(found[1]) if found else None


class DockerContainers:
    """``BackendContainers`` on docker-py (shares the client of a ``DockerEngine``)."""

    def __init__(self, runtime: DockerEngine) -> None:
        self._runtime = runtime
        self._client = runtime._client
        self._networks_lock = threading.Lock()

    def ensure_network(self, name: str, labels: Mapping[str, str]) -> None:
        # The engine lets two networks share a name: concurrent starts must not
        # both create it (check_duplicate is best effort, and racy across calls).
        with self._networks_lock, _mapped_errors(f"create network {name}"):
            # The engine's name filter matches parts of names too.
            if any(n.name == name for n in self._client.networks.list(names=[name])):
                return
            self._client.networks.create(
                name,
                driver="bridge",
                check_duplicate=True,
                labels=dict(labels),
                options={
                    "com.docker.network.bridge.enable_ip_masquerade": "false",
                    "com.docker.network.bridge.enable_icc": "false",
                },
            )

    def remove_network(self, name: str) -> None:
        try:
            self._client.networks.get(name).remove()
        except docker.errors.NotFound:
            return
        except docker.errors.DockerException as exc:
            raise ContainerEngineError(f"remove network {name}: {exc}") from exc

    def create_volume(self, name: str, labels: Mapping[str, str]) -> None:
        with _mapped_errors(f"create volume {name}"):
            self._client.volumes.create(name=name, driver="local", labels=dict(labels))

    def remove_volume(self, name: str) -> None:
        try:
            self._client.volumes.get(name).remove(force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.DockerException as exc:
            raise ContainerEngineError(f"remove volume {name}: {exc}") from exc

    def list_volumes(self, labels: Mapping[str, str]) -> dict[str, dict[str, str]]:
        with _mapped_errors(f"list volumes labelled {dict(labels)}"):
            found = self._client.volumes.list(filters=_label_filters(labels))
        return {
            str(volume.name): dict(volume.attrs.get("Labels") or {}) for volume in found
        }

    def storage_driver(self) -> str:
        with _mapped_errors("read the engine's storage driver"):
            return str(self._client.info().get("Driver", ""))

    def image_id(self, ref: str) -> str | None:
        return _found_or_none(
            f"inspect image {ref}", lambda: str(self._client.images.get(ref).id)
        )

    def fill_volumes(self, fill: RunSpec) -> str:
        # The engine copies the image's content into each empty volume when the
        # container is created (at its start on some engines): the command runs with
        # them mounted, so the copy is made, and proven, either way.
        return self._runtime.run(fill)

    def create_container(self, spec: ContainerSpec) -> str:
        kwargs: dict[str, Any] = {
            "name": spec.name,
            "labels": dict(spec.labels),
            "environment": dict(spec.environment),
            "user": spec.user,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"] if spec.no_new_privileges else [],
            "read_only": spec.read_only,
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={spec.tmpfs_mb}m"},
            "pids_limit": spec.pids,
            "mem_limit": f"{spec.memory_mb}m",
            "memswap_limit": f"{spec.memory_mb}m",
            "nano_cpus": int(spec.cpus * 1e9),
            "restart_policy": {
                "Name": "on-failure",
                "MaximumRetryCount": spec.restart_retries,
            },
            "detach": True,
        }
        if spec.command:  # else the image's own
            kwargs["command"] = list(spec.command)
        if spec.healthcheck:
            kwargs["healthcheck"] = {
                "test": ["CMD", *spec.healthcheck],
                "interval": int(HEALTHCHECK_INTERVAL * 1e9),
                "timeout": 5_000_000_000,
                "retries": 3,
                "start_period": 30_000_000_000,
            }
        if spec.network is None:
            kwargs["network_mode"] = "none"
        else:
            kwargs["network"] = spec.network
        if spec.ports:
            kwargs["ports"] = {
                f"{port}/tcp": (host, host_port)
                for port, (host, host_port) in spec.ports.items()
            }
        if spec.cap_add:
            kwargs["cap_add"] = list(spec.cap_add)
        volumes: dict[str, dict[str, str]] = {}
        if spec.socket_dir is not None:
            volumes[str(spec.socket_dir)] = {"bind": "/run/beephost", "mode": "rw"}
        if spec.controller_socket_dir is not None:
            volumes[str(spec.controller_socket_dir)] = {
                "bind": "/run/beephost-controller",
                "mode": "rw",
            }
        for volume, mount_point in spec.volumes.items():
            volumes[volume] = {"bind": mount_point, "mode": "rw"}
        for volume, mount_point in spec.shared_volumes.items():
            volumes[volume] = {"bind": mount_point, "mode": "ro"}
        for directory, (mount_point, mode) in spec.egress.items():
            volumes[str(directory)] = {"bind": mount_point, "mode": mode}
        if volumes:
            kwargs["volumes"] = volumes
        if spec.group_add:
            kwargs["group_add"] = list(spec.group_add)
        with _mapped_errors(f"create container {spec.name}"):
            container = self._client.containers.create(spec.image, **kwargs)
        if spec.network is not None:
            self._put_off_join(str(container.id), spec.network)
        return str(container.id)

    def _put_off_join(self, container_id: str, network: str) -> None:
        """Leave ``network`` until the container has started (``start_container``
        joins it): the engine's set-up of it (a veth pair on the bridge, the port's
        proxy and rules: 80-130 ms here) then runs beside the server's boot instead
        of before the process starts, and a published port is answered once joined.
        Best effort: where the engine refuses, the container starts joined."""
        try:
            self._client.api.disconnect_container_from_network(container_id, network)
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            logger.info("the engine keeps %s on %s until start", container_id, network)

    def start_container(self, ref: str) -> None:
        with _mapped_errors(f"start container {ref}"):
            container = self._client.containers.get(ref)
            container.start()
            self._join(str(container.id), container.attrs)

    def join_network(self, ref: str) -> None:
        with _mapped_errors(f"join the network of container {ref}"):
            container = self._client.containers.get(ref)
            self._join(str(container.id), container.attrs)

    def _join(self, container_id: str, attrs: Mapping[str, Any]) -> None:
        network = unjoined_network(attrs)
        if network is not None:  # a port taken meanwhile fails here: PortInUse
            self._client.api.connect_container_to_network(container_id, network)

    def container_state(self, ref: str) -> ContainerState | None:
        return _found_or_none(
            f"inspect container {ref}",
            lambda: _container_state(self._client.containers.get(ref)),
        )

    def remove_container(self, ref: str) -> None:
        try:
            self._client.containers.get(ref).remove(force=True, v=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and "already in progress" in str(exc):
                # Another remove of it runs (a stop beside an expiry): its end is ours.
                self._wait_removed(ref, exc)
                return
            raise ContainerEngineError(f"remove container {ref}: {exc}") from exc
        except (
            docker.errors.DockerException,
            requests.exceptions.RequestException,
        ) as exc:
            raise ContainerEngineError(f"remove container {ref}: {exc}") from exc

    def _wait_removed(self, ref: str, cause: Exception) -> None:
        deadline = time.monotonic() + REMOVAL_WAIT
        while time.monotonic() < deadline:
            try:
                self._client.containers.get(ref)
            except docker.errors.NotFound:
                return
            except docker.errors.DockerException as exc:
                raise ContainerEngineError(f"remove container {ref}: {exc}") from exc
            time.sleep(0.1)
        raise ContainerEngineError(
            f"remove container {ref}: another removal of it did not end within "
            f"{REMOVAL_WAIT:.0f} s: {cause}"
        )

    def container_logs(self, ref: str, tail: int, *, timestamps: bool = False) -> str:
        try:
            with _mapped_errors(f"logs of container {ref}"):
                data = self._client.containers.get(ref).logs(
                    tail=tail, timestamps=timestamps
                )
        except ImageNotFoundError as exc:  # docker-py's NotFound: "No such container"
            raise ContainerGone(str(exc)) from exc
        return bytes(data).decode(errors="replace")

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerState]:
        with _mapped_errors(f"list containers labelled {dict(labels)}"):
            found = self._client.containers.list(
                all=True, filters=_label_filters(labels)
            )
        return [_container_state(container) for container in found]

    def network_gateways(self, name: str) -> list[str]:
        with _mapped_errors(f"inspect network {name}"):
            attrs = self._client.networks.get(name).attrs
        return network_gateways(attrs)

    def list_networks(self, labels: Mapping[str, str]) -> list[str]:
        with _mapped_errors(f"list networks labelled {dict(labels)}"):
            found = self._client.networks.list(filters=_label_filters(labels))
        return [str(network.name) for network in found]

    def put_archive(self, ref: str, path: str, data: bytes) -> None:
        with _mapped_errors(f"copy into container {ref}"):
            if not self._client.containers.get(ref).put_archive(path, data):
                raise ContainerEngineError(f"copy into container {ref}:{path} failed")

    def exec_in(
        self, ref: str, command: Sequence[str], user: str, timeout: float
    ) -> tuple[int, str]:
        with _mapped_errors(f"exec in container {ref}"):
            container = self._client.containers.get(ref)
        # docker-py's exec has no deadline of its own: wait for it on a thread (one
        # that overruns is left to finish on its own, not waited for).
        pool = ThreadPoolExecutor(1, thread_name_prefix="beephost-exec")
        future = pool.submit(container.exec_run, list(command), user=user)
        pool.shutdown(wait=False)
        try:
            with _mapped_errors(f"exec in container {ref}"):
                result = future.result(timeout)
        except FutureTimeout:
            raise ContainerEngineError(
                f"exec in container {ref}: no exit after {timeout:.0f} s"
            ) from None
        return int(result.exit_code), bytes(result.output or b"").decode(
            errors="replace"
        )
