"""The records the fakes keep of what they were asked: builds, commits, registry images."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from beephost_controller.specs import CommitRunSpec, ImageBuildSpec


@dataclass(frozen=True)
class CommitRun:
    """One ``FakeEngine.commit_run`` call: its spec, and the files it copied in."""

    spec: CommitRunSpec
    #: Container path of every regular file copied in -> its bytes at the call.
    files: Mapping[str, bytes]


@dataclass(frozen=True)
class ImageBuild:
    """One ``FakeEngine.build_image`` call: its spec, and the context's files at the
    call (the builders remove the context afterwards)."""

    spec: ImageBuildSpec
    #: Every regular file of the context, relative (POSIX).
    files: frozenset[str]


@dataclass(frozen=True)
class RemoteImage:
    """An image the fake registry serves by digest."""

    python_version: str
    labels: Mapping[str, str] = field(default_factory=dict)
    size: int = 50_000_000
