"""The egress proxy's image: mitmproxy and our addon on the pinned bookworm base, offline.

One image per controller code and proxy lock, content-addressed like the backend
images (``<prefix>/egress-proxy:3.11-<key>``, ``<prefix>/egress-proxy:3.11`` following
the newest). Built with the legacy builder and no network, from a wheelhouse the
controller fills first: ``egress-proxy/requirements.lock``'s wheels (hash-checked, from
the shared pool; an entry with no wheel at all is built from its hash-checked source
distribution on the controller's side, and pinned to the wheel's exact bytes), and our
``beephost-protocol``, ``beephost-core`` (serve.py's relay) and ``beephost-controller``
(the policy modules) as wheels installed ``--no-deps``: ``egress-proxy/build-env``'s
steps. The image runs ``egress-proxy/serve.py`` as user 10002 (``PROXY_USER``).

The key: the base image id, the lock, ``addon.py``, ``serve.py``, the Dockerfile and
install script, the installer, the extra labels, and the source of every module of
ours the two scripts import (followed through imports: ``proxy_modules``), so an
unrelated controller change does not rebuild (nor restart) the proxy.

Example:
    >>> ensure_egress_proxy_image(base, runtime, inputs).tag
    'beephost/egress-proxy:3.11-5d0c1e2f3a4b5c6d'
"""

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from beephost_controller.images.base_source import BaseImage
from beephost_controller.images.egress_proxy_wheels import (
    PROXY_DIR,
    PROXY_LOCK,
    PROXY_PYTHON,
    SourceWheelTool,
    pinned_lines,
    proxy_wheels,
    render_proxy_requirements,
)
from beephost_controller.images.ensure import ensure
from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.import_graph import imported_sources
from beephost_controller.images.inputs import BuildInputs
from beephost_controller.images.keys import (
    alias_tag,
    content_key,
    image_tag,
    python_minor_of,
    sha256_file,
)
from beephost_controller.images.labels import (
    KIND_EGRESS_PROXY_BUILD,
    KIND_EGRESS_PROXY_IMAGE,
    LABEL_BASE_IMAGE,
    LABEL_BUILD_KEY,
    LABEL_INSTALLER,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_PYTHON_VERSION,
)
from beephost_controller.images.lockfile import (
    lock_requirements,
)
from beephost_controller.images.scratch import scratch_build
from beephost_controller.images.wheelhouse import (
    build_member_wheel,
)
from beephost_controller.ports import ContainerEngine, ImageInfo
from beephost_controller.specs import ImageBuildSpec

logger = logging.getLogger(__name__)

#: Bumped when the image's shape changes (every key changes with it).
EGRESS_PROXY_LAYOUT = "1"
PROXY_SCRIPTS = ("addon.py", "serve.py")
#: Our packages in the image (``--no-deps``), by import name: their workspace member.
PROXY_MEMBERS: Mapping[str, str] = {
    "beephost_protocol": "packages/protocol",
    "beephost_core": "packages/core",
    "beephost_controller": "services/controller",
}
#: Where things are in the image.
PROXY_PREFIX = "/opt/egress"
PROXY_APP = f"{PROXY_PREFIX}/app"
PROXY_UID = 10002
#: The proxy's user: not the sandboxes' (10001), so nothing of theirs can read its
#: config (which holds the secrets) even through a shared mount by mistake.
PROXY_USER = f"{PROXY_UID}:{PROXY_UID}"
PROXY_COMMAND = (f"{PROXY_PREFIX}/bin/python", f"{PROXY_APP}/serve.py")
#: Inside the container: what serve.py reads and writes (the design's mounts).
PROXY_STATE_DIR = "/run/egress"
PROXY_SOCKET_DIR = "/run/egress-socket"
PROXY_METRICS_DIR = "/run/egress-metrics"
#: The modules the build imports as a check: a wheel missing from the lock fails the
#: build, not the proxy's start.
PROXY_IMPORTS = (
    "mitmproxy.tools.main",
    "prometheus_client",
    "publicsuffixlist",
    "beephost_core.stream_relay",
    "beephost_controller.egress_proxy_config",
    "beephost_controller.egress_rules",
)
#: The wheelhouse's second requirements file: our wheels, installed --no-deps.
OURS_FILE = "ours.txt"

_INSTALL_SCRIPT = """\
#!/bin/sh
# Written by beephost_controller.images.egress_proxy: egress-proxy/build-env's steps,
# offline, from /wheels: the lock with its hashes, then our wheels without dependencies.
set -eu
umask 022
minor="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$minor" != "@MINOR@" ]; then
    echo "the wheelhouse is for CPython @MINOR@, the base has $minor" >&2
    exit 1
fi
python3 -m venv --without-pip @PREFIX@
install() {
    if [ -x /wheels/uv ]; then
        UV_CACHE_DIR=/tmp/uv-cache UV_NO_CONFIG=1 UV_PYTHON_DOWNLOADS=never \\
        /wheels/uv pip install --quiet --python @PREFIX@/bin/python \\
            --offline --no-index --find-links /wheels --require-hashes --no-build \\
            --compile-bytecode --link-mode=copy "$@"
        rm -rf /tmp/uv-cache
    else
        for pip_wheel in /usr/share/python-wheels/pip-*.whl; do :; done
        @PREFIX@/bin/python "$pip_wheel/pip" install --quiet --no-cache-dir \\
            --disable-pip-version-check --no-index --find-links /wheels \\
            --require-hashes --only-binary=:all: "$@"
    fi
}
install -r /wheels/requirements.txt
install --no-deps -r /wheels/@OURS@
test -x @PREFIX@/bin/mitmdump
@PREFIX@/bin/python -c \\
    'import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]' @IMPORTS@
"""

DOCKERFILE = f"""\
# Generated by beephost_controller.images.egress_proxy (layout {EGRESS_PROXY_LAYOUT}).
# The legacy builder, no network: everything comes from the wheelhouse in the context.
ARG BASE_IMAGE
FROM ${{BASE_IMAGE}} AS build
ARG BUILD_KEY=manual
LABEL {LABEL_KIND}={KIND_EGRESS_PROXY_BUILD} {LABEL_BUILD_KEY}=${{BUILD_KEY}}
COPY wheels/ /wheels/
RUN sh /wheels/install.sh

FROM ${{BASE_IMAGE}}
COPY --from=build {PROXY_PREFIX} {PROXY_PREFIX}
COPY app/ {PROXY_APP}/
# One layer: the compiled stdlib (a read-only root caches no .pyc), the proxy's user
# and the mount points (the controller mounts its state, socket and metrics there).
RUN set -eu; \\
    python3 -m compileall -q -j 0 "$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" > /dev/null; \\
    echo 'egress:x:{PROXY_UID}:{PROXY_UID}:Beep Python Host egress proxy:/tmp:/usr/sbin/nologin' >> /etc/passwd; \\
    echo 'egress:x:{PROXY_UID}:' >> /etc/group; \\
    mkdir -p {PROXY_STATE_DIR} {PROXY_SOCKET_DIR} {PROXY_METRICS_DIR}
ENV HOME=/tmp PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER {PROXY_USER}
CMD {json.dumps(list(PROXY_COMMAND))}
"""


def install_script() -> str:
    """The build stage's install script (``/wheels/install.sh``)."""
    return (
        _INSTALL_SCRIPT.replace("@MINOR@", PROXY_PYTHON)
        .replace("@PREFIX@", PROXY_PREFIX)
        .replace("@OURS@", OURS_FILE)
        .replace("@IMPORTS@", " ".join(PROXY_IMPORTS))
    )


def proxy_modules(workspace: Path) -> dict[str, str]:
    """The sha256 of every source file of ours the proxy's scripts import, by path.

    Raises:
        BackendImageError: A script is missing.
    """
    scripts = [workspace / PROXY_DIR / name for name in PROXY_SCRIPTS]
    return imported_sources(workspace, scripts, PROXY_MEMBERS)


# -- the key and the labels -----------------------------------------------------------


@dataclass(frozen=True)
class ProxyPlan:
    """Everything that decides the proxy's image, hashed into its key."""

    base_image_id: str
    python_version: str
    lock_text: str
    scripts: Mapping[str, str]
    modules: Mapping[str, str]
    installer: str
    extra_labels: Mapping[str, str]

    @property
    def key(self) -> str:
        return content_key(
            {
                "layout": EGRESS_PROXY_LAYOUT,
                "base": self.base_image_id,
                "lock": hashlib.sha256(self.lock_text.encode()).hexdigest(),
                "scripts": dict(sorted(self.scripts.items())),
                "modules": dict(sorted(self.modules.items())),
                "dockerfile": hashlib.sha256(DOCKERFILE.encode()).hexdigest(),
                "install": hashlib.sha256(install_script().encode()).hexdigest(),
                "installer": self.installer,
                "labels": dict(sorted(self.extra_labels.items())),
            }
        )


def plan_egress_proxy(base: BaseImage, inputs: BuildInputs) -> ProxyPlan:
    """Read what decides the image from the workspace (the lock, the scripts, the
    modules they import) and the base.

    Raises:
        BackendImageError: The base is not CPython 3.11, or a file is missing.
    """
    if python_minor_of(base.python_version) != PROXY_PYTHON:
        raise BackendImageError(
            f"the egress proxy runs on CPython {PROXY_PYTHON} (its lock's), "
            f"not {base.python_version} ({base.tag})"
        )
    workspace = inputs.workspace
    try:
        lock_text = (workspace / PROXY_LOCK).read_text()
    except OSError as exc:
        raise BackendImageError(f"cannot read {PROXY_LOCK}: {exc}") from exc
    installer, _ = inputs.tools.installer()
    return ProxyPlan(
        base_image_id=base.image_id,
        python_version=base.python_version,
        lock_text=lock_text,
        scripts={
            name: sha256_file(workspace / PROXY_DIR / name) for name in PROXY_SCRIPTS
        },
        modules=proxy_modules(workspace),
        installer=installer,
        extra_labels=inputs.extra_labels,
    )


def proxy_repository(inputs: BuildInputs) -> str:
    """``<prefix>/egress-proxy``, beside the backend images (``beephost/`` by default)."""
    return f"{inputs.repository_prefix or 'beephost'}/egress-proxy"


def proxy_labels(plan: ProxyPlan, base_ref: str) -> dict[str, str]:
    """The image's own labels (the caller adds the extra and owner ones)."""
    return {
        LABEL_MANAGED: "true",
        LABEL_KIND: KIND_EGRESS_PROXY_IMAGE,
        LABEL_BUILD_KEY: plan.key,
        LABEL_PYTHON_VERSION: plan.python_version,
        LABEL_BASE_IMAGE: base_ref,
        LABEL_INSTALLER: plan.installer,
        "org.opencontainers.image.title": "beephost-egress-proxy",
        "org.opencontainers.image.description": (
            "Beep Python Host egress proxy: mitmproxy with the allow-list addon"
        ),
        "org.opencontainers.image.vendor": "Beep Python Host",
    }


def prepare_proxy_context(
    plan: ProxyPlan, inputs: BuildInputs, source: SourceWheelTool, context: Path
) -> None:
    """Lay out the build context: ``Dockerfile``, ``app/`` (the two scripts) and
    ``wheels/`` (the lock's wheels, ours, both requirement files, the install script
    and the host's uv when it runs in the image).

    Raises:
        BackendImageError: A wheel could not be had or built.
    """
    workspace = inputs.workspace
    wheels = context / "wheels"
    requirements = lock_requirements(plan.lock_text)
    from_source = proxy_wheels(requirements, inputs, source, wheels)
    (wheels / "requirements.txt").write_text(
        render_proxy_requirements(requirements, from_source)
    )
    ours = [
        build_member_wheel(workspace, member, wheels, inputs.tools)
        for member in PROXY_MEMBERS.values()
    ]
    (wheels / OURS_FILE).write_text("\n".join(pinned_lines(ours)) + "\n")
    (wheels / "install.sh").write_text(install_script())
    _, uv_binary = inputs.tools.installer()
    if uv_binary is not None:
        shutil.copy2(uv_binary, wheels / "uv")
    app = context / "app"
    app.mkdir()
    for name in PROXY_SCRIPTS:
        shutil.copy2(workspace / PROXY_DIR / name, app / name)
    (context / "Dockerfile").write_text(DOCKERFILE)


# -- ensure -------------------------------------------------------------------------


@dataclass
class EgressProxyRecipe:
    """``ensure``'s recipe of the proxy's image."""

    plan: ProxyPlan
    base: BaseImage
    inputs: BuildInputs
    source: SourceWheelTool
    what = "egress proxy image"
    kind = KIND_EGRESS_PROXY_IMAGE
    error = BackendImageError

    def __post_init__(self) -> None:
        self.key = self.plan.key
        self.repository = proxy_repository(self.inputs)
        self.tag = image_tag(self.repository, PROXY_PYTHON, self.key)
        self.aliases: tuple[str, ...] = (alias_tag(self.repository, PROXY_PYTHON),)
        # The image the alias left is removed if unused: never the running proxy's
        # (the engine refuses while a container uses it).
        self.retires: str | None = self.aliases[0]

    def is_current(self, info: ImageInfo) -> bool:
        labels = info.labels
        return (
            labels.get(LABEL_MANAGED) == "true"
            and labels.get(LABEL_KIND) == KIND_EGRESS_PROXY_IMAGE
            and labels.get(LABEL_BUILD_KEY) == self.key
        )

    def build(self, runtime: ContainerEngine) -> ImageInfo:
        with scratch_build(
            runtime,
            tag=self.tag,
            cache_dir=self.inputs.cache_dir,
            prefix="context-egress-proxy-",
            leftovers={LABEL_KIND: KIND_EGRESS_PROXY_BUILD, LABEL_BUILD_KEY: self.key},
        ) as context:
            prepare_proxy_context(self.plan, self.inputs, self.source, context)
            logger.info("building %s from %s", self.tag, self.base.tag)
            return runtime.build_image(
                ImageBuildSpec(
                    context,
                    dockerfile="Dockerfile",
                    tag=self.tag,
                    buildargs={
                        "BASE_IMAGE": self.base.image_id,
                        "BUILD_KEY": self.key,
                    },
                    labels={
                        **proxy_labels(self.plan, self.base.tag),
                        **self.inputs.image_labels,
                    },
                )
            )


@dataclass(frozen=True)
class EgressProxyImage:
    """The proxy's local image: its tag, id and whether this call built it."""

    tag: str
    image_id: str
    build_key: str
    built: bool
    size: int
    seconds: float


def ensure_egress_proxy_image(
    base: BaseImage,
    runtime: ContainerEngine,
    inputs: BuildInputs,
    source: SourceWheelTool,
    *,
    refresh: bool = False,
    log: Callable[[str], None] = lambda _line: None,
) -> EgressProxyImage:
    """Find the proxy's image by its content key, or build it (offline).

    Args:
        base: The CPython 3.11 base image (Debian bookworm's, or the registry's).
        runtime: The container engine.
        inputs: Workspace, cache, tools, labels and repository prefix.
        source: Builds a wheel from a locked sdist (``UvTools``).
        refresh: Build even if the tag exists.
        log: Hears of a build before it starts.

    Raises:
        BackendImageError: Wrong base, a wheel that cannot be had, a failed build.
        ContainerEngineError: The engine failed otherwise.
    """
    if runtime.get_image(base.image_id) is None:
        raise BackendImageError(f"base image {base.tag} ({base.image_id}) is gone")
    recipe = EgressProxyRecipe(plan_egress_proxy(base, inputs), base, inputs, source)
    found = ensure(
        recipe,
        runtime,
        lock=inputs.cache_dir / ".lock",
        refresh=refresh,
        log=log,
    )
    return EgressProxyImage(
        tag=recipe.tag,
        image_id=found.info.id,
        build_key=recipe.key,
        built=found.built,
        size=found.info.size,
        seconds=found.seconds,
    )
