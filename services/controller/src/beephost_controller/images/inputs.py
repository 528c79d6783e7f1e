"""``BuildInputs``: what every image build of one caller shares, besides its recipe.

The workspace the builds read, the cache they write wheels and contexts to, the host
tools, the extra labels and the repository prefix are the same for every image one
caller (the ``ImageBuilder``, a release script, a test) makes: one value, made once and
handed down through the recipes, instead of the same keyword arguments at every layer.

Example:
    >>> inputs = BuildInputs(repository_prefix="beephost-test")
    >>> inputs.repository("pipe"), inputs.servers_repository
    ('beephost-test/pipe-backend', 'beephost-test/servers')
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from beephost_controller.images.labels import owner_labels
from beephost_controller.images.layout import (
    ImageKind,
    default_cache_dir,
    default_repository,
    find_workspace,
    servers_repository,
    service_name,
)
from beephost_controller.images.uv_tools import UvTools
from beephost_controller.images.wheelhouse import WheelhouseTools
from beephost_controller.settings import Settings


@dataclass(frozen=True)
class BuildInputs:
    """The inputs every backend, servers and environment image build shares.

    Attributes:
        workspace: The repository root (resolved); found above the current directory
            if omitted.
        cache_dir: The wheel pool, build contexts and the build lock;
            ``default_cache_dir()`` if omitted.
        tools: Host tools for the wheelhouses; ``UvTools()`` if omitted.
        extra_labels: More labels on every image (tests use one to clean up); part
            of the backend, servers and environment images' keys.
        repository_prefix: Where backend, servers and controller images go:
            ``<prefix>/<kind>-backend``, ``<prefix>/servers``, ``<prefix>/controller``;
            ``beephost/...`` if omitted (tests keep the real ones untouched).
        controller: The name of the controller that builds (``settings.name``), put on
            every image and build container as their owner; never part of a key, so
            controllers share what they build but each removes only its own.
    """

    workspace: Path = field(default_factory=find_workspace)
    cache_dir: Path = field(default_factory=default_cache_dir)
    tools: WheelhouseTools = field(default_factory=UvTools)
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    repository_prefix: str | None = None
    controller: str | None = None

    def __post_init__(self) -> None:
        # Frozen, so set once here: a resolved root and a copy of the caller's labels.
        object.__setattr__(self, "workspace", self.workspace.resolve())
        object.__setattr__(self, "extra_labels", dict(self.extra_labels))

    @classmethod
    def from_settings(cls, settings: Settings) -> "BuildInputs":
        """The controller's own: its workspace (else the one above the current
        directory), labels and backend image prefix."""
        return cls(
            workspace=settings.workspace or find_workspace(),
            extra_labels=settings.labels,
            repository_prefix=settings.backend_image_prefix,
            controller=settings.name,
        )

    @property
    def image_labels(self) -> dict[str, str]:
        """The labels every image built carries: the extra ones and the owner's."""
        return {**self.extra_labels, **owner_labels(self.controller)}

    def repository(self, kind: ImageKind) -> str:
        """The repository of a backend's (or the controller's) images."""
        if self.repository_prefix:
            return f"{self.repository_prefix}/{service_name(kind)}"
        return default_repository(kind)

    @property
    def servers_repository(self) -> str:
        """The repository of the servers images, next to the backend images."""
        return servers_repository(self.repository_prefix)
