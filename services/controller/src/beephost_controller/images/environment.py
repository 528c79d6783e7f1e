"""Environment images: the servers image plus an environment's locked packages.

Two images, so that a new environment costs one container run, not a Dockerfile build:
the servers image (``servers``), and the environment image: the servers image plus one
layer, made by one container (``ContainerEngine.commit_run``): as root, without
network, the host-made wheelhouse copied in at ``/wheels``, it installs the
environment's lock into ``/opt/env`` (``--offline --no-index --require-hashes``, never
the network), removes ``/wheels`` and is committed with the image's labels and user
10001. No build cache, no per-instruction commits, no copy of the servers' venvs per
environment.

Every server's ``BEEPHOST_*_PYTHON`` is ``/opt/env/bin/python``: user code runs with
exactly the environment's packages, and none of the servers' (no fastapi, no grpcio).

The ``admin`` environment's image also carries the client SDK in ``/opt/env`` (user code
there drives the controller with ``beephost_client.ControllerClient``): the wheels of
``beephost-protocol`` and ``beephost-client`` are built from the workspace and
installed after the lock with ``--no-deps``, pinned by hash in ``sdk.txt``; their one
third-party dependency (pydantic) is part of the lock (the controller resolves the
admin environment's requirements together with the SDK's).
"""

import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from beephost_controller.images.backend import BackendImage, ensure_backend_image
from beephost_controller.images.base_source import BaseImage
from beephost_controller.images.ensure import ensure
from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.inputs import BuildInputs
from beephost_controller.images.install import commit_changes, install_script
from beephost_controller.images.keys import (
    ENVIRONMENT_LAYOUT,
    code_version,
    content_key,
    python_minor_of,
    source_tree_hash,
)
from beephost_controller.images.labels import (
    KIND_ENVIRONMENT_BUILD,
    KIND_ENVIRONMENT_IMAGE,
    LABEL_BUILD_KEY,
    LABEL_CODE_VERSION,
    LABEL_ENVIRONMENT_LOCK,
    LABEL_ENVIRONMENT_SDK,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_PYTHON_VERSION,
    LABEL_SERVERS_IMAGE,
    check_label_keys,
)
from beephost_controller.images.layout import (
    SDK_MEMBERS,
    SDK_REQUIREMENTS_FILE,
    WHEELHOUSE,
    backend_package,
)
from beephost_controller.images.lockfile import (
    LockedRequirement,
    lock_requirements,
    parse_export,
    render_sdk_requirements,
)
from beephost_controller.images.scratch import scratch_build
from beephost_controller.images.servers import ServersImage, ensure_servers_image
from beephost_controller.images.wheelhouse import (
    WheelhouseTools,
    build_member_wheel,
    pool_wheels,
)
from beephost_controller.ports import ContainerEngine, ContainerEngineError, ImageInfo
from beephost_controller.schemas import BACKEND_TYPES, BackendType
from beephost_controller.specs import CommitRunSpec

logger = logging.getLogger(__name__)

#: Seconds the install of one environment may take.
INSTALL_TIMEOUT = 900.0


def workspace_code_version(workspace: Path, tools: WheelhouseTools) -> str:
    """One hash over the source trees of every package in the three servers.

    Equal for every runtime: it only depends on our code, not on a base image.
    """
    members: dict[str, str] = {}
    for kind in BACKEND_TYPES:
        export = parse_export(tools.export(workspace, backend_package(kind)))
        for member in export.members:
            members[member] = source_tree_hash(workspace / member)
    return code_version(members)


def sdk_code_version(workspace: Path) -> str:
    """One hash over the client SDK's source trees (what an admin image adds)."""
    return code_version(
        {member: source_tree_hash(workspace / member) for member in SDK_MEMBERS}
    )


def environment_labels(
    *,
    lock_digest: str,
    code: str,
    python_version: str,
    build_key: str,
    servers_image_id: str,
    sdk: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The labels of an environment image (over the servers image's)."""
    labels = {
        **(extra_labels or {}),
        LABEL_MANAGED: "true",
        LABEL_KIND: KIND_ENVIRONMENT_IMAGE,
        LABEL_ENVIRONMENT_LOCK: lock_digest,
        LABEL_CODE_VERSION: code,
        LABEL_PYTHON_VERSION: python_version,
        LABEL_BUILD_KEY: build_key,
        LABEL_SERVERS_IMAGE: servers_image_id,
    }
    if sdk is not None:
        labels[LABEL_ENVIRONMENT_SDK] = sdk
    return labels


@dataclass(frozen=True)
class EnvironmentImage:
    """A local environment image."""

    tag: str
    image_id: str
    code_version: str
    built: bool
    seconds: float
    size: int = 0
    sdk: str | None = None


@dataclass
class EnvironmentRecipe:
    """``ensure``'s recipe of an environment image: the backend and servers images it
    stands on (each ensured in turn), then one install committed on the servers image.
    """

    tag: str
    base: BaseImage
    requirements: tuple[LockedRequirement, ...]
    lock_digest: str
    code: str
    sdk: str | None
    inputs: BuildInputs
    log: Callable[[str], None]
    what = "environment image"
    kind = KIND_ENVIRONMENT_IMAGE
    aliases: tuple[str, ...] = ()
    retires: str | None = None
    error = BackendImageError

    @property
    def repository(self) -> str:
        return self.tag.rsplit(":", 1)[0]

    def is_current(self, info: ImageInfo) -> bool:
        # The tag is the caller's content address (base, lock and code): whatever is
        # under it is this environment.
        return True

    def build(self, runtime: ContainerEngine) -> ImageInfo:
        backends = self._backends(runtime)
        servers = ensure_servers_image(
            base=self.base,
            backends=backends,
            runtime=runtime,
            code=self.code,
            inputs=self.inputs,
            log=self.log,
        )
        self.log(
            f"servers image {servers.tag} "
            + (f"(built in {servers.seconds:.1f} s)" if servers.built else "(cached)")
        )
        key = content_key(
            {
                "layout": ENVIRONMENT_LAYOUT,
                "base": self.base.image_id,
                "backends": {k: b.image_id for k, b in backends.items()},
                "servers": servers.image_id,
                "lock": self.lock_digest,
                "labels": dict(self.inputs.extra_labels),
                "sdk": self.sdk,
            }
        )
        labels = environment_labels(
            lock_digest=self.lock_digest,
            code=self.code,
            python_version=self.base.python_version,
            build_key=key,
            servers_image_id=servers.image_id,
            sdk=self.sdk,
            extra_labels=self.inputs.image_labels,
        )
        self.log(f"building {self.tag} offline")
        if not self.requirements and self.sdk is None:
            # Nothing to install: the servers image's empty /opt/env is the environment.
            try:
                return runtime.build_labelled_image(servers.image_id, self.tag, labels)
            except ContainerEngineError as exc:
                raise BackendImageError(f"building {self.tag} failed: {exc}") from exc
        build_labels = {
            # The owner too: a restart removes only its own leftover build containers.
            **self.inputs.image_labels,
            LABEL_KIND: KIND_ENVIRONMENT_BUILD,
            LABEL_BUILD_KEY: key,
        }
        return self._install(runtime, servers, labels, build_labels)

    def _backends(self, runtime: ContainerEngine) -> dict[BackendType, BackendImage]:
        backends: dict[BackendType, BackendImage] = {}
        for kind in BACKEND_TYPES:
            backends[kind] = image = ensure_backend_image(
                kind, self.base, runtime, self.inputs
            )
            self.log(
                f"{kind} backend image {image.tag} "
                f"({'built' if image.built else 'cached'})"
            )
        return backends

    def _install(
        self,
        runtime: ContainerEngine,
        servers: ServersImage,
        labels: Mapping[str, str],
        build_labels: Mapping[str, str],
    ) -> ImageInfo:
        """The wheelhouse, then one install container on the servers image, committed."""
        minor = python_minor_of(self.base.python_version)
        inputs = self.inputs
        # The install container is removed by commit_run; the labels find one that a
        # failure there left behind.
        with scratch_build(
            runtime,
            tag=self.tag,
            cache_dir=inputs.cache_dir,
            prefix="wheels-env-",
            leftovers=build_labels,
        ) as wheels:
            if self.requirements:
                self.log(
                    f"wheelhouse: {len(self.requirements)} locked wheel(s) "
                    f"for CPython {minor}"
                )
                pool_wheels(
                    self.requirements,
                    minor,
                    cache_dir=inputs.cache_dir,
                    target=wheels,
                    tools=inputs.tools,
                )
                (wheels / "requirements.txt").write_text(
                    "\n".join(r.line() for r in self.requirements) + "\n"
                )
            if self.sdk is not None:
                built = [
                    build_member_wheel(inputs.workspace, m, wheels, inputs.tools)
                    for m in SDK_MEMBERS
                ]
                (wheels / SDK_REQUIREMENTS_FILE).write_text(
                    render_sdk_requirements(built)
                )
                self.log(
                    "client SDK: "
                    + ", ".join(f"{w.name} {w.version}" for w in built)
                    + f" (source {self.sdk})"
                )
            _, uv_binary = inputs.tools.installer()
            if uv_binary is not None:
                shutil.copy2(uv_binary, wheels / "uv")
            script = install_script(
                install=bool(self.requirements), sdk=self.sdk is not None
            )
            return runtime.commit_run(
                CommitRunSpec(
                    servers.image_id,
                    ["/bin/sh", "-c", script],
                    tag=self.tag,
                    user="0:0",
                    files={wheels: WHEELHOUSE},
                    labels=build_labels,
                    changes=commit_changes(labels),
                    timeout=INSTALL_TIMEOUT,
                )
            )


def ensure_environment_image(
    *,
    base: BaseImage,
    lock_text: str,
    lock_digest: str,
    tag: str,
    runtime: ContainerEngine,
    inputs: BuildInputs,
    code: str,
    sdk: str | None = None,
    log: Callable[[str], None],
) -> EnvironmentImage:
    """Build (or find) the environment image ``tag`` for ``lock_text`` on ``base``.

    ``inputs``' extra labels go on the backend and servers images too (they are part
    of their build keys), and its repository prefix says where those go. ``code`` is
    the servers' ``workspace_code_version``. ``sdk``, the SDK's ``sdk_code_version``,
    adds the client SDK (``SDK_MEMBERS``) to ``/opt/env``, for the admin environment;
    the lock must hold its dependencies (pydantic). ``tag`` is the image's address
    (``keys.environment_tag`` of base, lock and code): the caller computes it once,
    from the same ``code`` and ``sdk``. ``log`` gets the build's progress (the job log).

    Raises:
        BackendImageError: A backend or servers image, a wheel or the install failed.
    """
    check_label_keys(inputs.extra_labels)
    recipe = EnvironmentRecipe(
        tag=tag,
        base=base,
        requirements=lock_requirements(lock_text),
        lock_digest=lock_digest,
        code=code,
        sdk=sdk,
        inputs=inputs,
        log=log,
    )
    found = ensure(recipe, runtime, lock=inputs.cache_dir / ".lock", log=log)
    if found.built:
        log(f"built {tag} in {found.seconds:.1f} s ({found.info.size / 1e6:.0f} MB)")
    else:
        log(f"image {tag} exists: equal environment, nothing to build")
    return EnvironmentImage(
        tag,
        found.info.id,
        recipe.code,
        found.built,
        found.seconds,
        found.info.size,
        recipe.sdk,
    )
