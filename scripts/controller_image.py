"""The controller's own image: release engineering, not part of the controller.

Built by the controller's backend-image recipe (kind ``controller``:
``services/controller/Dockerfile``, ``beephost/controller:<X.Y>-<key>``, moving tags
``:<X.Y>`` and ``:local``) with the workspace sources environment builds read
(``CONTROLLER_SOURCES``, carried in ``/opt/beephost-src``), whose hash is part of its
key; and the wheelhouses a manual ``docker build`` from the repository root needs.
``scripts/release_images.py`` is their command line.
"""

import hashlib
import os
import shutil
from pathlib import Path

from beephost_controller.images.backend import (
    BackendImage,
    ensure_backend_image,
    prepare_wheelhouse,
)
from beephost_controller.images.backend_plan import (
    ContextSources,
    kind_build_args,
    plan_backend_image,
)
from beephost_controller.images.base_source import BaseImage
from beephost_controller.images.ensure import locked
from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.inputs import BuildInputs
from beephost_controller.images.keys import SOURCE_EXCLUDED_SUFFIXES, sha256_file
from beephost_controller.images.layout import (
    CONTROLLER,
    dockerfile_path,
    image_kind,
    wheelhouse_path,
)
from beephost_controller.ports import ContainerEngine

#: Workspace files and directories the controller image carries (what environment
#: image builds read: the lock, every member's sources, the backends' Dockerfile and
#: its install script), relative to the repository root, and where they go in the
#: image.
CONTROLLER_SOURCES = (
    "pyproject.toml",
    "uv.lock",
    ".python-version",
    ".dockerignore",
    "packages",
    "services",
    # The egress proxy image's lock, addon and entrypoint (images/egress_proxy.py).
    "egress-proxy",
)
CONTROLLER_SOURCE_PREFIX = "/opt/beephost-src"
#: The controller's second moving tag, the one compose.yaml names.
CONTROLLER_LOCAL_TAG = "local"
#: Left out of the controller's copied sources (as .dockerignore leaves them out of a
#: build from the repository root; ``build`` also below it).
_CONTEXT_EXCLUDED_DIRS = frozenset(
    {
        ".git",
        ".venv",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".cache",
        "dist",
        "build",
        "node_modules",
    }
)


def controller_source_files(workspace: Path) -> list[str]:
    """The files of ``CONTROLLER_SOURCES`` the controller image carries, sorted,
    relative to ``workspace`` (POSIX paths): caches, virtualenvs and build outputs
    left out.

    Raises:
        BackendImageError: One of ``CONTROLLER_SOURCES`` is missing.
    """
    files: list[str] = []
    for name in CONTROLLER_SOURCES:
        top = workspace / name
        if top.is_file():
            files.append(name)
            continue
        if not top.is_dir():
            raise BackendImageError(
                f"the controller image carries {name}, which {workspace} lacks"
            )
        for root, dirs, names in os.walk(top):
            dirs[:] = sorted(
                d
                for d in dirs
                if d not in _CONTEXT_EXCLUDED_DIRS and not d.endswith(".egg-info")
            )
            for filename in sorted(names):
                path = Path(root) / filename
                if filename.endswith(SOURCE_EXCLUDED_SUFFIXES) or not path.is_file():
                    continue
                files.append(path.relative_to(workspace).as_posix())
    return sorted(files)


def controller_sources_hash(workspace: Path) -> str:
    """Hash of every file the controller image carries in ``/opt/beephost-src``.

    Raises:
        BackendImageError: One of ``CONTROLLER_SOURCES`` is missing.
    """
    digest = hashlib.sha256()
    for relative in controller_source_files(workspace):
        digest.update(relative.encode() + b"\0")
        digest.update(sha256_file(workspace / relative).encode() + b"\n")
    return digest.hexdigest()


def controller_sources(workspace: Path) -> ContextSources:
    """The sources the controller's image carries, for ``ensure_backend_image``.

    Raises:
        BackendImageError: One of ``CONTROLLER_SOURCES`` is missing.
    """
    return ContextSources(
        files=tuple(controller_source_files(workspace)),
        digest=controller_sources_hash(workspace),
    )


def ensure_controller_image(
    base: BaseImage,
    runtime: ContainerEngine,
    inputs: BuildInputs | None = None,
    *,
    refresh: bool = False,
) -> BackendImage:
    """Make sure the controller's image on ``base`` exists locally.

    ``ensure_backend_image("controller", ...)``: ``services/controller/Dockerfile``
    built offline from the ``beephost-controller`` wheelhouse and the workspace sources
    (``CONTROLLER_SOURCES``); tagged ``<repository>:<X.Y>-<key>`` and moved tags
    ``<repository>:<X.Y>`` and ``<repository>:local`` (repository
    ``inputs.repository("controller")``, by default ``beephost/controller``).
    ``inputs`` and ``refresh`` are ``ensure_backend_image``'s.

    Raises:
        BackendImageError: As ``ensure_backend_image``.
        ContainerEngineError: The engine failed otherwise.

    Example:
        >>> ensure_controller_image(base, runtime).aliases
        ('beephost/controller:3.11', 'beephost/controller:local')
    """
    inputs = inputs or BuildInputs()
    return ensure_backend_image(
        CONTROLLER,
        base,
        runtime,
        inputs,
        refresh=refresh,
        sources=controller_sources(inputs.workspace),
        extra_aliases=(CONTROLLER_LOCAL_TAG,),
    )


def export_wheelhouse(kind: str, base: BaseImage, inputs: BuildInputs) -> Path:
    """Write the wheelhouse into the repository, for ``docker build`` by hand.

    Afterwards ``manual_build_command(kind, base)`` works from the repository root.

    Returns:
        The wheelhouse directory (``<workspace>/build/wheelhouse/<kind>-backend``, or
        ``.../controller``).

    Raises:
        BackendImageError: A wheel could not be built or downloaded.
    """
    backend = image_kind(kind)
    workspace = inputs.workspace
    sources = controller_sources(workspace) if backend == CONTROLLER else None
    plan, export = plan_backend_image(backend, base, inputs, sources=sources)
    target = workspace / wheelhouse_path(backend)
    with locked(inputs.cache_dir / ".lock"):
        shutil.rmtree(target, ignore_errors=True)
        prepare_wheelhouse(plan, export, inputs, target)
    return target


def manual_build_command(kind: str, base: BaseImage, tag: str) -> list[str]:
    """The ``docker build`` of ``kind``'s image, as ``tag``, from the repository root,
    once ``export_wheelhouse`` has written its wheelhouse (the legacy builder, offline,
    on ``base``)."""
    image = image_kind(kind)
    args = {"BASE_IMAGE": base.tag, **kind_build_args(image)}
    return [
        "docker",
        "build",
        "--network=none",
        "-f",
        dockerfile_path(image),
        *(f"--build-arg={name}={value}" for name, value in args.items()),
        "-t",
        tag,
        ".",
    ]
