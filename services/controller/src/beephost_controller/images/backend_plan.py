"""What decides a backend image: its plan, content key, labels and build arguments.

Pure, but for reading the workspace: ``plan_backend_image`` reads the Dockerfile, the
``.dockerignore``, the shared install script, the lock (through ``uv export``) and the members' source trees.
"""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from beephost_controller.images.base_source import BaseImage
from beephost_controller.images.dockerfile import check_dockerfile
from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.inputs import BuildInputs
from beephost_controller.images.keys import (
    LAYOUT_VERSION,
    alias_tag,
    code_version,
    content_key,
    python_minor_of,
    source_tree_hash,
)
from beephost_controller.images.labels import (
    KIND_BACKEND_IMAGE,
    KIND_CONTROLLER_IMAGE,
    LABEL_BACKEND,
    LABEL_BASE_IMAGE,
    LABEL_BUILD_KEY,
    LABEL_CODE_VERSION,
    LABEL_INSTALLER,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_PYTHON_MINOR,
    LABEL_PYTHON_VERSION,
    check_label_keys,
)
from beephost_controller.images.layout import (
    CONTROLLER,
    INSTALL_SCRIPT,
    ImageKind,
    backend_dockerfile_args,
    backend_package,
    dockerfile_path,
    image_packages,
    wheelhouse_path,
)
from beephost_controller.images.lockfile import LockedExport, parse_export


@dataclass(frozen=True)
class ContextSources:
    """Workspace files an image carries besides its wheels (the controller's sources).

    ``files``: paths relative to the workspace (POSIX), copied into the build context
    at the same place; ``digest``: their hash, part of the image's key.
    """

    files: tuple[str, ...]
    digest: str


@dataclass(frozen=True)
class BuildPlan:
    """Everything that decides a backend image, hashed into its build key.

    ``install_script``: ``services/install-server.sh``, which the build stage runs.
    ``sources``: the workspace sources the image carries (the controller's; ``None``
    for the backends, whose keys then are what they always were).
    """

    kind: ImageKind
    python_minor: str
    base_image_id: str
    dockerfile: str
    dockerignore: str
    install_script: str
    requirements: tuple[str, ...]
    members: Mapping[str, str]
    installer: str
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    sources: ContextSources | None = None

    @property
    def key(self) -> str:
        return build_key(self)

    @property
    def code_version(self) -> str:
        return code_version(self.members)


def image_label_kind(kind: ImageKind) -> str:
    """The ``io.beephost.kind`` label of the image: backend or controller image."""
    return KIND_CONTROLLER_IMAGE if kind == CONTROLLER else KIND_BACKEND_IMAGE


def build_key(plan: BuildPlan) -> str:
    """The content key of a backend (or the controller's) image (see ``keys``)."""
    payload: dict[str, object] = {
        "layout": LAYOUT_VERSION,
        "kind": plan.kind,
        "python": plan.python_minor,
        "base": plan.base_image_id,
        # The Dockerfile and the install script its build stage runs: one set of
        # instructions (a plan without a script keeps the key it always had).
        "dockerfile": hashlib.sha256(
            (plan.dockerfile + plan.install_script).encode()
        ).hexdigest(),
        "dockerignore": hashlib.sha256(plan.dockerignore.encode()).hexdigest(),
        "requirements": list(plan.requirements),
        "members": dict(sorted(plan.members.items())),
        "installer": plan.installer,
        "labels": dict(sorted(plan.extra_labels.items())),
        # One Dockerfile for the three backends: what makes it one kind's image.
        "args": kind_build_args(plan.kind),
    }
    if plan.sources is not None:
        # Only the controller carries sources: the backends' payload (and so every
        # backend tag) is unchanged by them.
        payload["sources"] = plan.sources.digest
    return content_key(payload)


def alias_tags(
    repository: str, python_minor: str, extra: Sequence[str] = ()
) -> tuple[str, ...]:
    """Every moving tag: ``<repository>:<X.Y>``, then ``<repository>:<name>`` for each
    of ``extra`` (the controller's ``local``, what compose.yaml runs)."""
    return (
        alias_tag(repository, python_minor),
        *(f"{repository}:{name}" for name in extra),
    )


def backend_labels(
    plan: BuildPlan, *, python_version: str, base_ref: str
) -> dict[str, str]:
    """Labels of a backend image (the Dockerfile declares the same, from build args).

    The controller's image has ``io.beephost.kind=controller-image`` and no
    ``io.beephost.backend``.
    """
    kind_labels = {LABEL_KIND: image_label_kind(plan.kind)}
    if plan.kind != CONTROLLER:
        kind_labels[LABEL_BACKEND] = plan.kind
    return {
        **plan.extra_labels,
        LABEL_MANAGED: "true",
        **kind_labels,
        LABEL_PYTHON_MINOR: plan.python_minor,
        LABEL_PYTHON_VERSION: python_version,
        LABEL_CODE_VERSION: plan.code_version,
        LABEL_BUILD_KEY: plan.key,
        LABEL_BASE_IMAGE: plan.base_image_id,
        LABEL_INSTALLER: plan.installer,
        "org.opencontainers.image.title": backend_package(plan.kind),
        "org.opencontainers.image.version": plan.code_version,
        "org.opencontainers.image.vendor": "Beep Python Host",
        "org.opencontainers.image.base.name": base_ref,
    }


def build_args(
    plan: BuildPlan, *, python_version: str, base_ref: str
) -> dict[str, str]:
    """The ``ARG`` values the image's Dockerfile declares: the backends' one file
    takes its kind's arguments, the controller's its wheelhouse."""
    return {
        "BASE_IMAGE": base_ref,
        **kind_build_args(plan.kind),
        "BUILD_KEY": plan.key,
        "PYTHON_VERSION": python_version,
        "CODE_VERSION": plan.code_version,
    }


def kind_build_args(kind: ImageKind) -> dict[str, str]:
    """What the image's Dockerfile needs to know of ``kind``."""
    if kind == CONTROLLER:
        return {"WHEELHOUSE": wheelhouse_path(kind)}
    return backend_dockerfile_args(kind)


def is_current(labels: Mapping[str, str], plan: BuildPlan) -> bool:
    """Whether an image with ``labels`` is the one ``plan`` would build."""
    return (
        labels.get(LABEL_MANAGED) == "true"
        and labels.get(LABEL_KIND) == image_label_kind(plan.kind)
        and labels.get(LABEL_BUILD_KEY) == plan.key
    )


# -- the build context -----------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise BackendImageError(f"cannot read {path}: {exc}") from exc


def plan_backend_image(
    kind: ImageKind,
    base: BaseImage,
    inputs: BuildInputs,
    *,
    sources: ContextSources | None = None,
) -> tuple[BuildPlan, LockedExport]:
    """Compute what an image of ``kind`` on ``base`` would be, without building it.

    ``inputs``: the workspace, tools and extra labels read (the cache is not);
    ``sources``: workspace files the image carries besides its wheels.

    Raises:
        BackendImageError: The workspace, lock or Dockerfile is unusable.
    """
    workspace, tools, extra = inputs.workspace, inputs.tools, inputs.extra_labels
    check_label_keys(extra)
    dockerfile = _read_text(workspace / dockerfile_path(kind))
    problems = check_dockerfile(dockerfile)
    if problems:
        raise BackendImageError(f"{dockerfile_path(kind)}: {'; '.join(problems)}")
    dockerignore_file = workspace / ".dockerignore"
    dockerignore = dockerignore_file.read_text() if dockerignore_file.is_file() else ""
    install_script = _read_text(workspace / INSTALL_SCRIPT)
    export = parse_export(tools.export(workspace, *image_packages(kind)))
    if not export.members:
        raise BackendImageError(f"uv export of {backend_package(kind)} has no members")
    members = {
        member: source_tree_hash(workspace / member) for member in export.members
    }
    installer, _ = tools.installer()
    plan = BuildPlan(
        kind=kind,
        python_minor=python_minor_of(base.python_version),
        base_image_id=base.image_id,
        dockerfile=dockerfile,
        dockerignore=dockerignore,
        install_script=install_script,
        requirements=tuple(r.line() for r in export.requirements),
        members=members,
        installer=installer,
        extra_labels=extra,
        sources=sources,
    )
    return plan, export
