"""Backend images: each backend's Dockerfile built on a pinned-CPython base, offline.

The build context is a small directory shaped like the repository root
(``.dockerignore``, the backend's ``Dockerfile``, ``build/wheelhouse/<kind>-backend/``
filled by ``wheelhouse``), so the same Dockerfile builds from the real repository root
with ``docker build`` too. The tag ``<repository>:<X.Y>-<key>`` is content-addressed
(``keys``); ``<repository>:<X.Y>`` follows the newest build.

The controller's image is built by the same recipe (kind ``controller``,
``services/controller/Dockerfile``), with the workspace sources it carries given as
``ContextSources`` by the release tools (``scripts/controller_image.py``).

Example:
    >>> image = ensure_backend_image("pipe", base, runtime, BuildInputs(Path(".")))
    >>> image.tag
    'beephost/pipe-backend:3.11-0f3c9a1d2b4e6f70'
"""

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from beephost_controller.images.backend_plan import (
    BuildPlan,
    ContextSources,
    alias_tags,
    backend_labels,
    build_args,
    image_label_kind,
    is_current,
    plan_backend_image,
)
from beephost_controller.images.base_source import BaseImage
from beephost_controller.images.ensure import ensure
from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.inputs import BuildInputs
from beephost_controller.images.keys import image_tag
from beephost_controller.images.labels import (
    KIND_BACKEND_BUILD,
    LABEL_BUILD_KEY,
    LABEL_KIND,
)
from beephost_controller.images.layout import (
    INSTALL_SCRIPT_NAME,
    ImageKind,
    dockerfile_path,
    image_kind,
    wheelhouse_path,
)
from beephost_controller.images.lockfile import (
    BuiltWheel,
    LockedExport,
    render_requirements,
)
from beephost_controller.images.scratch import scratch_build
from beephost_controller.images.wheelhouse import build_member_wheel, pool_wheels
from beephost_controller.ports import ContainerEngine, ImageInfo
from beephost_controller.specs import ImageBuildSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendImage:
    """A local backend (or controller) image.

    Attributes:
        kind: ``"pipe"``, ``"http"``, ``"rpc"`` or ``"controller"``.
        tag: The content-addressed ``<repository>:<X.Y>-<key>``.
        alias: ``<repository>:<X.Y>``, moved to the newest build.
        image_id: The engine's image id.
        python_version: Exact CPython version of the base image.
        code_version: Hash of our packages' source trees in the image.
        build_key: The full hash the tag is derived from.
        base_image_id: The base image it was built on.
        built: Whether this call built it; ``False`` on a cache hit.
        size: Image size in bytes, as the engine reports it.
        seconds: Wall time of this call.
        aliases: Every moving tag, ``alias`` first (the controller's adds
            ``<repository>:local``).
    """

    kind: ImageKind
    tag: str
    alias: str
    image_id: str
    python_version: str
    code_version: str
    build_key: str
    base_image_id: str
    built: bool
    size: int = 0
    seconds: float = 0.0
    aliases: tuple[str, ...] = ()


def prepare_wheelhouse(
    plan: BuildPlan, export: LockedExport, inputs: BuildInputs, wheelhouse: Path
) -> list[BuiltWheel]:
    """Fill ``wheelhouse`` with everything the Dockerfile installs, offline.

    Third-party wheels come from the pool in the cache directory (downloaded on a
    miss), our members are built fresh; ``requirements.txt`` pins all of them by hash,
    next to ``python-minor``, the install script the Dockerfiles run and, when the
    host's uv runs in the image, the ``uv`` binary (an image that carries sources also
    gets ``dockerignore``, the workspace's ``.dockerignore``).

    Returns:
        Our wheels, as built into the wheelhouse.

    Raises:
        BackendImageError: A wheel could not be built or downloaded.
    """
    tools = inputs.tools
    pool_wheels(
        export.requirements,
        plan.python_minor,
        cache_dir=inputs.cache_dir,
        target=wheelhouse,
        tools=tools,
    )
    ours = [
        build_member_wheel(inputs.workspace, m, wheelhouse, tools)
        for m in export.members
    ]
    (wheelhouse / "requirements.txt").write_text(
        render_requirements(export.requirements, ours)
    )
    (wheelhouse / "python-minor").write_text(plan.python_minor + "\n")
    (wheelhouse / INSTALL_SCRIPT_NAME).write_text(plan.install_script)
    _, uv_binary = tools.installer()
    if uv_binary is not None:
        shutil.copy2(uv_binary, wheelhouse / "uv")
    if plan.sources is not None:
        # The image's /opt/beephost-src/.dockerignore: the one in the build context
        # is not it (docker-py rewrites it), and backend build keys hash it.
        (wheelhouse / "dockerignore").write_text(plan.dockerignore)
    return ours


def prepare_context(
    plan: BuildPlan, export: LockedExport, inputs: BuildInputs, context: Path
) -> list[BuiltWheel]:
    """Lay out a build context shaped like the repository root, wheelhouse included.

    Only what the Dockerfile reads is there: ``.dockerignore``, the Dockerfile and
    the wheelhouse, so the engine receives a few tens of MB, not the repository, and
    the plan's ``sources`` if any (the controller's: about 2 MB).

    Returns:
        Our wheels, as built into the wheelhouse.

    Raises:
        BackendImageError: A wheel could not be built or downloaded.
    """
    for relative in plan.sources.files if plan.sources else ():
        copied = context / relative
        copied.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(inputs.workspace / relative, copied)
    target = context / dockerfile_path(plan.kind)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(plan.dockerfile)
    if plan.dockerignore:
        (context / ".dockerignore").write_text(plan.dockerignore)
    return prepare_wheelhouse(
        plan, export, inputs, context / wheelhouse_path(plan.kind)
    )


# -- ensure ----------------------------------------------------------------------------


@dataclass
class BackendRecipe:
    """``ensure``'s recipe of a backend (or the controller's) image."""

    plan: BuildPlan
    export: LockedExport
    base: BaseImage
    repository: str
    aliases: tuple[str, ...]
    inputs: BuildInputs
    what = "backend image"
    error = BackendImageError

    def __post_init__(self) -> None:
        self.key = self.plan.key
        self.tag = image_tag(self.repository, self.plan.python_minor, self.key)
        self.kind = image_label_kind(self.plan.kind)
        self.retires: str | None = self.aliases[0]

    def is_current(self, info: ImageInfo) -> bool:
        return is_current(info.labels, self.plan)

    def build(self, runtime: ContainerEngine) -> ImageInfo:
        base = self.base
        labels = {
            **backend_labels(
                self.plan, python_version=base.python_version, base_ref=base.tag
            ),
            **self.inputs.image_labels,
        }
        args = build_args(
            self.plan, python_version=base.python_version, base_ref=base.image_id
        )
        with scratch_build(
            runtime,
            tag=self.tag,
            cache_dir=self.inputs.cache_dir,
            prefix=f"context-{self.plan.kind}-",
            leftovers={LABEL_KIND: KIND_BACKEND_BUILD, LABEL_BUILD_KEY: self.key},
        ) as context:
            prepare_context(self.plan, self.export, self.inputs, context)
            logger.info("building %s from %s", self.tag, base.tag)
            return runtime.build_image(
                ImageBuildSpec(
                    context,
                    dockerfile=dockerfile_path(self.plan.kind),
                    tag=self.tag,
                    buildargs=args,
                    labels=labels,
                )
            )


def ensure_backend_image(
    kind: str,
    base: BaseImage,
    runtime: ContainerEngine,
    inputs: BuildInputs | None = None,
    *,
    refresh: bool = False,
    sources: ContextSources | None = None,
    extra_aliases: Sequence[str] = (),
) -> BackendImage:
    """Make sure the image of backend ``kind`` on ``base`` exists locally.

    The tag is content-addressed; when it exists with the expected build key, nothing
    is built (``built=False``). Otherwise the wheelhouse is prepared (wheels reused
    from the pool in the cache directory), the backend's Dockerfile is built without
    network, the build stage's intermediate images are removed, and
    ``<repository>:<X.Y>`` is moved to the new image (the image it left is removed if
    nothing uses it).

    Args:
        kind: ``"pipe"``, ``"http"``, ``"rpc"`` or ``"controller"``.
        base: The pinned-CPython base image (``ensure_base_image``).
        runtime: The container engine.
        inputs: The workspace, cache, tools, extra labels and repository prefix
            (the image goes to ``inputs.repository(kind)``); ``BuildInputs()`` if
            omitted.
        refresh: Build even if the tag exists.
        sources: Workspace files the image carries (the controller's).
        extra_aliases: More moving tags, ``<repository>:<name>`` each.

    Returns:
        The image, with its tag, id and versions.

    Raises:
        BackendImageError: Unknown kind, missing base, unusable lock or Dockerfile,
            a wheel that cannot be had, or a failed build.
        ContainerEngineError: The engine failed otherwise.

    Example:
        >>> ensure_backend_image("rpc", base, runtime).built
        False
    """
    backend = image_kind(kind)
    inputs = inputs or BuildInputs()
    repo = inputs.repository(backend)
    if runtime.get_image(base.image_id) is None:
        raise BackendImageError(f"base image {base.tag} ({base.image_id}) is gone")
    plan, export = plan_backend_image(backend, base, inputs, sources=sources)
    recipe = BackendRecipe(
        plan,
        export,
        base,
        repo,
        alias_tags(repo, plan.python_minor, extra_aliases),
        inputs,
    )
    found = ensure(recipe, runtime, lock=inputs.cache_dir / ".lock", refresh=refresh)
    return BackendImage(
        kind=backend,
        tag=recipe.tag,
        alias=recipe.aliases[0],
        image_id=found.info.id,
        python_version=base.python_version,
        code_version=plan.code_version,
        build_key=recipe.key,
        base_image_id=base.image_id,
        built=found.built,
        size=found.info.size,
        seconds=found.seconds,
        aliases=recipe.aliases,
    )
