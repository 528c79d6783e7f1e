"""``DockerEngine``: the ``ContainerEngine`` on docker-py (connection and image operations)."""

import contextlib
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.utils.build
import requests.exceptions

from beephost_controller.engine.docker_errors import (
    check_unix_socket as _check_unix_socket,
)
from beephost_controller.engine.docker_errors import image_info as _image_info
from beephost_controller.engine.docker_errors import label_filters as _label_filters
from beephost_controller.engine.docker_errors import mapped_errors as _mapped_errors
from beephost_controller.engine.docker_errors import split_tag as _split_tag
from beephost_controller.engine.docker_publish import DockerPublisher
from beephost_controller.engine.docker_runs import DockerRuns
from beephost_controller.ports import ContainerEngineError, ImageInfo
from beephost_controller.specs import ImageBuildSpec


class DockerEngine(DockerRuns):
    """``ContainerEngine`` backed by a Docker Engine through docker-py.

    Args:
        client: A ``docker.DockerClient``; see ``from_env`` for the usual way.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def from_env(cls, *, timeout: int = 300) -> "DockerEngine":
        """Connect as the docker CLI would (``DOCKER_HOST``, ``DOCKER_TLS_VERIFY``...).

        Args:
            timeout: Seconds before a single API call gives up; imports and pulls of
                base images take a while, hence the generous default.

        Raises:
            ContainerEngineError: No engine answers.
        """
        _check_unix_socket(timeout)
        with _mapped_errors("connect to the Docker engine"):
            client = docker.from_env(timeout=timeout)
            client.ping()
        return cls(client)

    def publisher(self) -> DockerPublisher:
        """Pushes this engine's images to a registry (for a cluster's nodes)."""
        return DockerPublisher(self._client)

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
            raise ContainerEngineError(f"inspect image {ref}: {exc}") from exc
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
            ContainerEngineError: The engine rejected the tarball or a change.
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
                raise ContainerEngineError(f"import {tarball}: {message['error']}")
        info = self.get_image(tag)
        if info is None:
            raise ContainerEngineError(f"import {tarball}: no image tagged {tag}")
        return info

    def pull_image(self, repository: str, digest: str) -> ImageInfo:
        """Pull ``repository@digest``.

        Args:
            repository: ``registry/namespace/name`` without tag.
            digest: ``sha256:...`` manifest (or index) digest.

        Raises:
            ImageNotFoundError: The registry has no such manifest.
            ContainerEngineError: Any other pull failure (unreachable registry...).
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
            ContainerEngineError: The build failed.
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

    def build_image(self, build: ImageBuildSpec) -> ImageInfo:
        """``ContainerEngine.build_image`` (ports.py) on docker-py's legacy builder."""
        context, tag, labels = build.context, build.tag, build.labels
        # The legacy builder turns the API's `labels` into one LABEL instruction per
        # label, and each instruction costs a commit (about 1 s here): append them to
        # a copy of the Dockerfile as a single instruction instead.
        source = context / build.dockerfile
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
            raise ContainerEngineError(f"build {tag}: {exc}") from exc
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
                    buildargs=dict(build.buildargs),
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
            raise ContainerEngineError(
                f"build {tag} from {source}: {exc.msg}\n{tail}"
            ) from exc
        except (
            OSError,
            docker.errors.DockerException,
            requests.exceptions.RequestException,
        ) as exc:
            raise ContainerEngineError(f"build {tag} from {source}: {exc}") from exc
        return _image_info(image)

    def remove_image(self, ref: str, *, force: bool = False) -> None:
        """Remove an image, or untag ``ref`` if the image has other references.

        Raises:
            ImageNotFoundError: No such image.
            ContainerEngineError: The image is in use (and ``force`` is false).
        """
        with _mapped_errors(f"remove image {ref}"):
            self._client.images.remove(ref, force=force)

    def list_images(self, labels: Mapping[str, str]) -> list[ImageInfo]:
        """Every local image carrying all of ``labels`` (tagged or not)."""
        with _mapped_errors(f"list images labelled {dict(labels)}"):
            images = self._client.images.list(filters=_label_filters(labels))
        return [_image_info(image) for image in images]

    def remove_by_labels(self, labels: Mapping[str, str]) -> list[str]:
        """Remove every container, volume and image carrying all of ``labels``.

        Args:
            labels: Label key/value pairs that must all match; must not be empty.

        Returns:
            The ids of the removed images.

        Raises:
            ValueError: ``labels`` is empty (that would match everything).
            ContainerEngineError: An image could not be removed.
        """
        if not labels:
            raise ValueError("refusing to remove by an empty label selector")
        filters = _label_filters(labels)
        with _mapped_errors(f"remove containers labelled {dict(labels)}"):
            found = self._client.containers.list(
                all=True, filters=filters, ignore_removed=True
            )
            for container in found:
                # v=True: a container's anonymous volumes (an image's VOLUME) go with
                # it; named volumes never do.
                with contextlib.suppress(docker.errors.NotFound):  # gone meanwhile
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
            raise ContainerEngineError(
                f"could not remove images {[image.id for image in pending]}"
            )
        return removed
