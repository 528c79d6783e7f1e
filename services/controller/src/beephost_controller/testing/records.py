"""The records the fakes keep of what they were asked: builds, commits, registry images."""

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CommitRun:
    """One ``FakeRuntime.commit_run`` call, with the files it was given."""

    image: str
    command: tuple[str, ...]
    tag: str
    user: str
    labels: Mapping[str, str]
    changes: tuple[str, ...]
    #: Container path of every regular file copied in -> its bytes at the call.
    files: Mapping[str, bytes]


@dataclass(frozen=True)
class ImageBuild:
    """One ``FakeRuntime.build_image`` call, with the context's files at the call."""

    dockerfile: str
    tag: str
    buildargs: Mapping[str, str]
    labels: Mapping[str, str]
    #: Every regular file of the context, relative (POSIX).
    files: frozenset[str]


@dataclass(frozen=True)
class RemoteImage:
    """An image the fake registry serves by digest."""

    python_version: str
    labels: Mapping[str, str] = field(default_factory=dict)
    size: int = 50_000_000
