"""``DockerRuns``: the one-shot containers of ``DockerEngine`` (run, and run then commit)."""

import logging
from typing import Any

import docker
import docker.errors

from beephost_controller.engine.docker_errors import image_info as _image_info
from beephost_controller.engine.docker_errors import mapped_errors as _mapped_errors
from beephost_controller.engine.docker_errors import split_tag as _split_tag
from beephost_controller.ports import (
    ContainerEngineError,
    ContainerRunError,
    ImageInfo,
)
from beephost_controller.specs import CommitRunSpec, RunSpec

logger = logging.getLogger(__name__)


class DockerRuns:
    """The ``run``/``commit_run`` half of ``DockerEngine``, kept apart to keep modules small.

    A base class of ``DockerEngine``, which sets ``_client``; not used on its own.
    """

    _client: Any

    def run(self, spec: RunSpec) -> str:
        """``ContainerEngine.run`` (ports.py): create, start, wait, then remove."""
        image, command = spec.image, spec.command
        mounts = {
            name: {"bind": path, "mode": "rw"} for name, path in spec.volumes.items()
        }
        with _mapped_errors(f"run {list(command)} in {image}"):
            container = self._client.containers.create(
                image,
                command=list(command),
                entrypoint=[],
                labels=dict(spec.labels),
                network_disabled=True,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                volumes=mounts,
            )
        # docker-py's containers.run(remove=True) leaks the container when start fails,
        # so the lifecycle is spelled out: whatever happens, remove it.
        try:
            with _mapped_errors(f"run {list(command)} in {image}"):
                container.start()
                # A wait() timeout is a requests exception: mapped to ours.
                status = container.wait(timeout=spec.timeout)
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

    def commit_run(self, run: CommitRunSpec) -> ImageInfo:
        """``ContainerEngine.commit_run`` (ports.py): create with the image's config
        restored, copy ``run.files`` in as root, start, wait, commit, then remove."""
        image, tag = run.image, run.tag
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
        argv = list(run.command)
        with _mapped_errors(f"create a container of {image} to run {argv}"):
            container = self._client.containers.create(
                image,
                entrypoint=argv,
                user=run.user,
                labels=dict(run.labels),
                network_mode="none",
            )
        try:
            with _mapped_errors(f"run {argv} in {image} for {tag}"):
                for host, target in run.files.items():
                    with tempfile.TemporaryFile(dir=host.parent) as tar:
                        with tarfile.open(fileobj=tar, mode="w") as archive:
                            archive.add(
                                host, arcname=target.strip("/"), filter=owned_by_root
                            )
                        tar.seek(0)
                        if not container.put_archive("/", tar):
                            raise ContainerEngineError(
                                f"copy {host} to {target} in {image}: refused"
                            )
                container.start()
                # A wait() timeout is a requests exception: mapped to ours.
                status = container.wait(timeout=run.timeout)
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
                    repository, name, changes=list(run.changes), conf=restored
                )
        except OSError as exc:
            raise ContainerEngineError(f"copy files into {image}: {exc}") from exc
        finally:
            try:
                # v=True: the anonymous volumes of the image's VOLUMEs go too.
                container.remove(force=True, v=True)
            except docker.errors.DockerException as exc:
                logger.warning("could not remove container %s: %s", container.id, exc)
        return _image_info(committed)
