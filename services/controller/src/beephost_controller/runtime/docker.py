"""``DockerRuntime``: the ``ContainerRuntime`` on docker-py, the project's only ``import docker``."""

import io
import json
import logging
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.utils
import docker.utils.build
import requests.exceptions
from docker.constants import DEFAULT_UNIX_SOCKET

from beephost_controller.ports import (
    ContainerConfigRefused,
    ContainerRunError,
    ContainerRuntimeError,
    ContainerSpec,
    ContainerState,
    ImageInfo,
    ImageNotFoundError,
    PortInUse,
)

logger = logging.getLogger(__name__)


#: How the engine (20.10 to 27) says a published host port is taken: by a container
#: ("port is already allocated") or by another process (its proxy's bind failed).
_PORT_IN_USE = ("port is already allocated", "address already in use")


@contextmanager
def _mapped_errors(action: str) -> Iterator[None]:
    # One translation point from docker-py's exceptions to ours (R9 in spirit).
    try:
        yield
    except (docker.errors.ImageNotFound, docker.errors.NotFound) as exc:
        raise ImageNotFoundError(f"{action}: {exc}") from exc
    except docker.errors.APIError as exc:
        if exc.status_code == 400:  # the engine's "invalid parameter"
            raise ContainerConfigRefused(f"{action}: {exc.explanation}") from exc
        if any(sign in str(exc.explanation) for sign in _PORT_IN_USE):
            raise PortInUse(f"{action}: {exc.explanation}") from exc
        raise ContainerRuntimeError(f"{action}: {exc}") from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise ContainerRuntimeError(f"{action}: {exc}") from exc


def _check_unix_socket(timeout: float) -> None:
    # docker-py leaks its socket when connecting to a Unix socket fails (a
    # ResourceWarning, an error under pytest's filterwarnings=error), so try the
    # socket first with one we close ourselves.
    base_url = docker.utils.kwargs_from_env().get("base_url") or DEFAULT_UNIX_SOCKET
    scheme, _, path = str(base_url).partition("://")
    if scheme not in ("unix", "http+unix"):
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as exc:
            raise ContainerRuntimeError(
                f"connect to the Docker engine at {path}: {exc}"
            ) from exc


def _image_info(image: Any) -> ImageInfo:
    attrs: dict[str, Any] = image.attrs
    return ImageInfo(
        id=str(image.id),
        tags=tuple(str(tag) for tag in image.tags),
        labels={str(k): str(v) for k, v in (image.labels or {}).items()},
        size=int(attrs.get("Size") or 0),
        repo_digests=tuple(str(d) for d in attrs.get("RepoDigests") or ()),
    )


def _split_tag(ref: str) -> tuple[str, str]:
    # "host:5000/repo:tag" -> ("host:5000/repo", "tag"); no tag means "latest".
    repository, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return repository, tag


def _label_filters(labels: Mapping[str, str]) -> dict[str, list[str]]:
    return {"label": [f"{key}={value}" for key, value in labels.items()]}


class DockerRuntime:
    """``ContainerRuntime`` backed by a Docker Engine through docker-py.

    Args:
        client: A ``docker.DockerClient``; see ``from_env`` for the usual way.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def from_env(cls, *, timeout: int = 300) -> "DockerRuntime":
        """Connect as the docker CLI would (``DOCKER_HOST``, ``DOCKER_TLS_VERIFY``...).

        Args:
            timeout: Seconds before a single API call gives up; imports and pulls of
                base images take a while, hence the generous default.

        Raises:
            ContainerRuntimeError: No engine answers.
        """
        _check_unix_socket(timeout)
        with _mapped_errors("connect to the Docker engine"):
            client = docker.from_env(timeout=timeout)
            client.ping()
        return cls(client)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def get_image(self, ref: str) -> ImageInfo | None:
        """Inspect a local image; ``None`` if there is none by that reference."""
        try:
            image = self._client.images.get(ref)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.DockerException as exc:
            raise ContainerRuntimeError(f"inspect image {ref}: {exc}") from exc
        return _image_info(image)

    def import_image(
        self, tarball: Path, tag: str, *, changes: Sequence[str] = ()
    ) -> ImageInfo:
        """Create a one-layer image from a root filesystem tarball (``docker import``).

        Args:
            tarball: A (compressed) tar of the root filesystem.
            tag: ``repository:tag`` to give the image.
            changes: Dockerfile instructions applied to the config (``LABEL``, ``ENV``...).

        Raises:
            ContainerRuntimeError: The engine rejected the tarball or a change.
        """
        repository, name = _split_tag(tag)
        with _mapped_errors(f"import {tarball} as {tag}"):
            result = self._client.api.import_image(
                src=str(tarball), repository=repository, tag=name, changes=list(changes)
            )
        # The engine answers with a JSON stream; errors arrive in it, not as a status.
        for line in str(result).splitlines():
            message = json.loads(line) if line.strip() else {}
            if "error" in message:
                raise ContainerRuntimeError(f"import {tarball}: {message['error']}")
        info = self.get_image(tag)
        if info is None:
            raise ContainerRuntimeError(f"import {tarball}: no image tagged {tag}")
        return info

    def pull_image(self, repository: str, digest: str) -> ImageInfo:
        """Pull ``repository@digest``.

        Args:
            repository: ``registry/namespace/name`` without tag.
            digest: ``sha256:...`` manifest (or index) digest.

        Raises:
            ImageNotFoundError: The registry has no such manifest.
            ContainerRuntimeError: Any other pull failure (unreachable registry...).
        """
        with _mapped_errors(f"pull {repository}@{digest}"):
            image = self._client.images.pull(repository, tag=digest)
        return _image_info(image)

    def tag_image(self, ref: str, tag: str) -> None:
        """Point ``tag`` at the image ``ref``.

        Raises:
            ImageNotFoundError: ``ref`` does not exist.
        """
        repository, name = _split_tag(tag)
        with _mapped_errors(f"tag {ref} as {tag}"):
            self._client.api.tag(ref, repository, name, force=True)

    def build_labelled_image(
        self, base: str, tag: str, labels: Mapping[str, str]
    ) -> ImageInfo:
        """Build ``FROM base`` plus labels, with the legacy builder and no network.

        Args:
            base: Local image reference or id to build on; never pulled.
            tag: ``repository:tag`` of the result.
            labels: Labels added to the image config.

        Raises:
            ContainerRuntimeError: The build failed.
        """
        # No "# syntax=" line: it would make BuildKit pull a frontend image. One LABEL
        # instruction, not the build's `labels` parameter: the legacy builder turns
        # that into one intermediate image per label.
        pairs = " ".join(f"{key}={json.dumps(value)}" for key, value in labels.items())
        dockerfile = f"FROM {base}\nLABEL {pairs}\n" if pairs else f"FROM {base}\n"
        with _mapped_errors(f"build {tag} from {base}"):
            image, _logs = self._client.images.build(
                fileobj=io.BytesIO(dockerfile.encode()),
                tag=tag,
                pull=False,
                rm=True,
                forcerm=True,
                network_mode="none",
            )
        return _image_info(image)

    def build_image(
        self,
        context: Path,
        *,
        dockerfile: str,
        tag: str,
        buildargs: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> ImageInfo:
        """Build a Dockerfile with the legacy builder, without network, tagged ``tag``.

        Args:
            context: The build context directory; its ``.dockerignore`` applies.
            dockerfile: Path of the Dockerfile inside ``context``.
            tag: ``repository:tag`` of the result.
            buildargs: ``ARG`` values.
            labels: Labels added to the final image.

        Raises:
            ContainerRuntimeError: The build failed; the message ends with the log tail.
        """
        # The legacy builder turns the API's `labels` into one LABEL instruction per
        # label, and each instruction costs a commit (about 1 s here): append them to
        # a copy of the Dockerfile as a single instruction instead.
        source = context / dockerfile
        try:
            text = source.read_text()
            ignore_file = context / ".dockerignore"
            exclude = (
                [
                    line.strip()
                    for line in ignore_file.read_text().splitlines()
                    if line.strip() and not line.strip().startswith("#")
                ]
                if ignore_file.is_file()
                else []
            )
        except OSError as exc:
            raise ContainerRuntimeError(f"build {tag}: {exc}") from exc
        if labels:
            pairs = " ".join(
                f"{json.dumps(key)}={json.dumps(value)}"
                for key, value in labels.items()
            )
            text = text.rstrip("\n") + f"\nLABEL {pairs}\n"
        name = ".beephost-build.Dockerfile"
        # network_mode="none": builds use a host-made wheelhouse and must not reach any
        # index (the TLS proxy would break them anyway). use_config_proxy=False keeps
        # the CLI's proxy settings out of the build arguments, hence out of the cache.
        try:
            with docker.utils.build.tar(
                str(context), exclude=exclude, dockerfile=(name, text)
            ) as archive:
                image, _logs = self._client.images.build(
                    fileobj=archive,
                    custom_context=True,
                    dockerfile=name,
                    tag=tag,
                    buildargs=dict(buildargs or {}),
                    pull=False,
                    rm=True,
                    forcerm=True,
                    network_mode="none",
                    use_config_proxy=False,
                )
        except docker.errors.BuildError as exc:
            lines = [
                str(entry.get("stream") or entry.get("error") or "").rstrip()
                for entry in exc.build_log
                if isinstance(entry, dict)
            ]
            tail = "\n".join(line for line in lines if line)[-3000:]
            raise ContainerRuntimeError(
                f"build {tag} from {source}: {exc.msg}\n{tail}"
            ) from exc
        except (
            OSError,
            docker.errors.DockerException,
            requests.exceptions.RequestException,
        ) as exc:
            raise ContainerRuntimeError(f"build {tag} from {source}: {exc}") from exc
        return _image_info(image)

    def run(
        self,
        image: str,
        command: Sequence[str],
        *,
        labels: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> str:
        """Run a container once without network and return its stdout.

        Args:
            image: Image reference or id.
            command: argv, run without a shell.
            labels: Labels of the container, so a crash leaves findable leftovers.
            timeout: Seconds to wait for the exit before killing the container.

        Raises:
            ContainerRunError: Non-zero exit status (stderr in ``output``).
            ContainerRuntimeError: The container could not be created or started.
        """
        with _mapped_errors(f"run {list(command)} in {image}"):
            container = self._client.containers.create(
                image,
                command=list(command),
                labels=dict(labels or {}),
                network_disabled=True,
            )
        # docker-py's containers.run(remove=True) leaks the container when start fails,
        # so the lifecycle is spelled out: whatever happens, remove it.
        try:
            with _mapped_errors(f"run {list(command)} in {image}"):
                container.start()
                # A wait() timeout is a requests exception: mapped to ours.
                status = container.wait(timeout=timeout)
                stdout = str(container.logs(stdout=True, stderr=False).decode())
                exit_code = int(status.get("StatusCode", -1))
                if exit_code != 0:
                    stderr = container.logs(stdout=False, stderr=True).decode()
                    raise ContainerRunError(
                        f"{list(command)} in {image} exited with {exit_code}: "
                        f"{stderr.strip()[-2000:]}",
                        exit_code=exit_code,
                        output=stderr,
                    )
        finally:
            try:
                container.remove(force=True, v=True)
            except docker.errors.DockerException as exc:
                logger.warning("could not remove container %s: %s", container.id, exc)
        return stdout

    def commit_run(
        self,
        image: str,
        command: Sequence[str],
        *,
        tag: str,
        user: str,
        files: Mapping[Path, str] | None = None,
        labels: Mapping[str, str] | None = None,
        changes: Sequence[str] = (),
        timeout: float = 600.0,
    ) -> ImageInfo:
        """Run ``command`` once without network and commit the container as ``tag``.

        Args:
            image: Image reference or id to run.
            command: argv, run without a shell (as the container's entrypoint: a
                commit keeps a container's command, so the image's own is restored).
            tag: ``repository:tag`` of the committed image.
            user: ``uid:gid`` the command runs as (the image's user is kept).
            files: Host directory -> absolute container path, copied in (a tar through
                the API) before the start, owned by root.
            labels: Labels of the container (and of the image, unless changed).
            changes: Dockerfile instructions for the image config (``LABEL``, ``USER``).
            timeout: Seconds to wait for the exit before the container is removed.

        Raises:
            ContainerRunError: Non-zero exit status (stdout and stderr in ``output``).
            ContainerRuntimeError: The container could not be created, run or committed.
        """
        # Local imports: this method is the module's only user of them.
        import tarfile
        import tempfile

        def owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            return info

        with _mapped_errors(f"inspect image {image}"):
            source: dict[str, Any] = self._client.images.get(image).attrs
        config: dict[str, Any] = source.get("Config") or {}
        # A commit merges the container's config into the image's: the user, the
        # command and the entrypoint of the run would stay unless given here. The run's
        # command is its entrypoint, so the container has no command of its own to keep.
        # (An image without a user runs as root: "0" says so, "" would keep the run's.)
        restored = {
            "User": config.get("User") or "0",
            "Entrypoint": list(config.get("Entrypoint") or []),
            "Cmd": list(config.get("Cmd") or []) or None,
        }
        repository, name = _split_tag(tag)
        argv = list(command)
        with _mapped_errors(f"create a container of {image} to run {argv}"):
            container = self._client.containers.create(
                image,
                entrypoint=argv,
                user=user,
                labels=dict(labels or {}),
                network_mode="none",
            )
        try:
            with _mapped_errors(f"run {argv} in {image} for {tag}"):
                for host, target in (files or {}).items():
                    with tempfile.TemporaryFile(dir=host.parent) as tar:
                        with tarfile.open(fileobj=tar, mode="w") as archive:
                            archive.add(
                                host, arcname=target.strip("/"), filter=owned_by_root
                            )
                        tar.seek(0)
                        if not container.put_archive("/", tar):
                            raise ContainerRuntimeError(
                                f"copy {host} to {target} in {image}: refused"
                            )
                container.start()
                # A wait() timeout is a requests exception: mapped to ours.
                status = container.wait(timeout=timeout)
                exit_code = int(status.get("StatusCode", -1))
                if exit_code != 0:
                    output = container.logs(stdout=True, stderr=True).decode(
                        errors="replace"
                    )
                    raise ContainerRunError(
                        f"{argv} in {image} exited with {exit_code}: "
                        f"{output.strip()[-3000:]}",
                        exit_code=exit_code,
                        output=output,
                    )
                committed = container.commit(
                    repository, name, changes=list(changes), conf=restored
                )
        except OSError as exc:
            raise ContainerRuntimeError(f"copy files into {image}: {exc}") from exc
        finally:
            try:
                # v=True: the anonymous volumes of the image's VOLUMEs go too.
                container.remove(force=True, v=True)
            except docker.errors.DockerException as exc:
                logger.warning("could not remove container %s: %s", container.id, exc)
        return _image_info(committed)

    def remove_image(self, ref: str, *, force: bool = False) -> None:
        """Remove an image, or untag ``ref`` if the image has other references.

        Raises:
            ImageNotFoundError: No such image.
            ContainerRuntimeError: The image is in use (and ``force`` is false).
        """
        with _mapped_errors(f"remove image {ref}"):
            self._client.images.remove(ref, force=force)

    def remove_by_labels(self, labels: Mapping[str, str]) -> list[str]:
        """Remove every container, volume and image carrying all of ``labels``.

        Args:
            labels: Label key/value pairs that must all match; must not be empty.

        Returns:
            The ids of the removed images.

        Raises:
            ValueError: ``labels`` is empty (that would match everything).
            ContainerRuntimeError: An image could not be removed.
        """
        if not labels:
            raise ValueError("refusing to remove by an empty label selector")
        filters = _label_filters(labels)
        with _mapped_errors(f"remove containers labelled {dict(labels)}"):
            for container in self._client.containers.list(all=True, filters=filters):
                # v=True: a container's anonymous volumes (an image's VOLUME) go with
                # it; named volumes never do.
                container.remove(force=True, v=True)
        with _mapped_errors(f"remove volumes labelled {dict(labels)}"):
            for volume in self._client.volumes.list(filters=filters):
                volume.remove(force=True)
        with _mapped_errors(f"list images labelled {dict(labels)}"):
            images = self._client.images.list(all=True, filters=filters)
        # Children before parents: a parent with a dependent child cannot be removed,
        # even with force; newest first gets the order right for our one-level builds.
        pending = sorted(images, key=lambda image: image.attrs.get("Created", ""))
        pending.reverse()
        removed: list[str] = []
        for _attempt in range(3):
            failed = []
            for image in pending:
                try:
                    self._client.images.remove(image.id, force=True)
                    removed.append(str(image.id))
                except docker.errors.ImageNotFound:
                    removed.append(str(image.id))  # pruned with its child already
                except docker.errors.APIError:
                    failed.append(image)
            pending = failed
            if not pending:
                break
        if pending:
            raise ContainerRuntimeError(
                f"could not remove images {[image.id for image in pending]}"
            )
        return removed


# -- backend containers (BackendContainers) ---------------------------------------------


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
    )


class DockerContainers:
    """``BackendContainers`` on docker-py (shares the client of a ``DockerRuntime``)."""

    def __init__(self, runtime: DockerRuntime) -> None:
        self._client = runtime._client

    def create_network(self, name: str, labels: Mapping[str, str]) -> None:
        with _mapped_errors(f"create network {name}"):
            self._client.networks.create(
                name,
                driver="bridge",
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
            raise ContainerRuntimeError(f"remove network {name}: {exc}") from exc

    def create_container(self, spec: ContainerSpec) -> str:
        kwargs: dict[str, Any] = {
            "name": spec.name,
            "command": list(spec.command),
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
            "healthcheck": {
                "test": ["CMD", *spec.healthcheck],
                "interval": 2_000_000_000,
                "timeout": 5_000_000_000,
                "retries": 3,
                "start_period": 30_000_000_000,
            },
            "detach": True,
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
        if volumes:
            kwargs["volumes"] = volumes
        if spec.group_add:
            kwargs["group_add"] = list(spec.group_add)
        with _mapped_errors(f"create container {spec.name}"):
            container = self._client.containers.create(spec.image, **kwargs)
        return str(container.id)

    def start_container(self, ref: str) -> None:
        with _mapped_errors(f"start container {ref}"):
            self._client.containers.get(ref).start()

    def container_state(self, ref: str) -> ContainerState | None:
        try:
            return _container_state(self._client.containers.get(ref))
        except docker.errors.NotFound:
            return None
        except (
            docker.errors.DockerException,
            requests.exceptions.RequestException,
        ) as exc:
            raise ContainerRuntimeError(f"inspect container {ref}: {exc}") from exc

    def remove_container(self, ref: str) -> None:
        try:
            self._client.containers.get(ref).remove(force=True, v=True)
        except docker.errors.NotFound:
            return
        except (
            docker.errors.DockerException,
            requests.exceptions.RequestException,
        ) as exc:
            raise ContainerRuntimeError(f"remove container {ref}: {exc}") from exc

    def container_logs(self, ref: str, tail: int) -> str:
        with _mapped_errors(f"logs of container {ref}"):
            data = self._client.containers.get(ref).logs(tail=tail, timestamps=False)
        return bytes(data).decode(errors="replace")

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerState]:
        with _mapped_errors(f"list containers labelled {dict(labels)}"):
            found = self._client.containers.list(
                all=True, filters=_label_filters(labels)
            )
        return [_container_state(container) for container in found]

    def list_networks(self, labels: Mapping[str, str]) -> list[str]:
        with _mapped_errors(f"list networks labelled {dict(labels)}"):
            found = self._client.networks.list(filters=_label_filters(labels))
        return [str(network.name) for network in found]
