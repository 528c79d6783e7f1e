"""The typed surface the controller needs from a container engine, and its errors."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class ContainerRuntimeError(Exception):
    """The container engine refused or failed an operation."""


class ContainerConfigRefused(ContainerRuntimeError):
    """The engine refused a container's configuration (a bad request, such as a CPU
    limit over the host's): the caller's input is at fault, not the engine."""


class PortInUse(ContainerRuntimeError):
    """A container could not start: a host port it publishes is taken (by another
    container, or by any other process on the host)."""


class ImageNotFoundError(ContainerRuntimeError):
    """An image or a registry manifest does not exist."""


class ContainerRunError(ContainerRuntimeError):
    """A one-shot container exited with a non-zero status."""

    def __init__(self, message: str, *, exit_code: int, output: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.output = output


@dataclass(frozen=True)
class ImageInfo:
    """What the engine knows about one local image."""

    id: str
    tags: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    size: int = 0
    repo_digests: tuple[str, ...] = ()


class ContainerRuntime(Protocol):
    """Image and container operations, implemented by ``DockerRuntime`` and ``FakeRuntime``.

    Image references are anything the engine resolves: ``repo:tag``, ``repo@sha256:...``
    or an image id.
    """

    def get_image(self, ref: str) -> ImageInfo | None:
        """Inspect a local image; ``None`` if there is none by that reference."""
        ...

    def import_image(
        self, tarball: Path, tag: str, *, changes: Sequence[str] = ()
    ) -> ImageInfo:
        """Create a one-layer image from a root filesystem tarball (``docker import``).

        ``changes`` are Dockerfile instructions (``LABEL``, ``ENV``, ``CMD``...) applied
        to the image config.
        """
        ...

    def pull_image(self, repository: str, digest: str) -> ImageInfo:
        """Pull ``repository@digest``; raises ``ImageNotFoundError`` if it is missing."""
        ...

    def tag_image(self, ref: str, tag: str) -> None:
        """Point ``tag`` (``repo:tag``) at the image ``ref``, moving it if it exists."""
        ...

    def build_labelled_image(
        self, base: str, tag: str, labels: Mapping[str, str]
    ) -> ImageInfo:
        """Build ``FROM base`` with extra labels only, tagged ``tag``, without network."""
        ...

    def build_image(
        self,
        context: Path,
        *,
        dockerfile: str,
        tag: str,
        buildargs: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> ImageInfo:
        """Build ``dockerfile`` (relative to ``context``) without network, tagged ``tag``.

        The legacy builder: no ``RUN --mount``, no ``# syntax=``; images named in
        ``FROM`` must be local (the engine may try to pull a missing one, and fail).
        ``context`` is a directory; its ``.dockerignore`` applies. ``labels`` are
        added to the final image. Raises ``ContainerRuntimeError`` (with the tail of
        the build log) when the build fails.
        """
        ...

    def run(
        self,
        image: str,
        command: Sequence[str],
        *,
        labels: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> str:
        """Run a container once without network and return its stdout.

        The container carries ``labels`` and is removed afterwards, whatever happens.
        Raises ``ContainerRunError`` on a non-zero exit.
        """
        ...

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
        """Run ``command`` once without network and commit the result as ``tag``.

        One layer on ``image`` (``docker commit``), without the build cache and the
        per-instruction commits of a Dockerfile. The container runs as ``user``;
        ``files`` maps host directories to absolute container paths they are copied to
        before it starts, through the engine's API (the engine need not see this
        process's filesystem: a controller in a container keeps its caches on a
        volume), so they are in the image unless ``command`` removes them. The
        container carries ``labels`` (a crash leaves a container that cleanup by label
        finds) and is removed afterwards, whatever happens.

        The image keeps ``image``'s config (user, entrypoint, command, environment):
        not the run's user and command. ``changes`` are Dockerfile instructions
        (``LABEL``, ``USER``, ``ENV``) applied to it; the run's ``labels`` stay on the
        image unless a change overrides them, as an engine's commit merges them.

        Raises ``ContainerRunError`` (with the tail of the output) on a non-zero exit,
        ``ContainerRuntimeError`` when the container cannot be run or committed.
        """
        ...

    def remove_image(self, ref: str, *, force: bool = False) -> None:
        """Remove an image or untag one of its references."""
        ...

    def remove_by_labels(self, labels: Mapping[str, str]) -> list[str]:
        """Remove every container, volume and image carrying all of ``labels``.

        Returns the removed image ids. This is how tests clean up: never by name.
        """
        ...
