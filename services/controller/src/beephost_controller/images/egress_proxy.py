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

import ast
import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from beephost_controller.images.base_source import BaseImage
from beephost_controller.images.ensure import ensure
from beephost_controller.images.errors import BackendImageError
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
    BuiltWheel,
    LockedRequirement,
    lock_requirements,
)
from beephost_controller.images.wheelhouse import (
    build_member_wheel,
    fill_pool,
    link_or_copy,
    pool_index,
)
from beephost_controller.ports import ContainerEngine, ContainerEngineError, ImageInfo
from beephost_controller.specs import ImageBuildSpec

logger = logging.getLogger(__name__)

#: Bumped when the image's shape changes (every key changes with it).
EGRESS_PROXY_LAYOUT = "1"
#: Debian bookworm's python3: mitmproxy 11 is the newest for it (requirements.in).
PROXY_PYTHON = "3.11"
#: The proxy's files in the repository.
PROXY_DIR = "egress-proxy"
PROXY_LOCK = f"{PROXY_DIR}/requirements.lock"
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
    "beephost_core.relay",
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


# -- what the scripts import -------------------------------------------------------------


def _module_file(workspace: Path, dotted: str) -> Path | None:
    """The source file of one of our modules (``None``: not ours, or no such file)."""
    parts = dotted.split(".")
    member = PROXY_MEMBERS.get(parts[0])
    if member is None:
        return None
    base = workspace / member / "src" / Path(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(workspace: Path, path: Path) -> str | None:
    for member in PROXY_MEMBERS.values():
        src = workspace / member / "src"
        if path.is_relative_to(src):
            parts = list(path.relative_to(src).with_suffix("").parts)
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return None


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _run_nodes(tree: ast.AST) -> Iterable[ast.AST]:
    """``ast.walk``, without ``if TYPE_CHECKING:`` bodies (never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if _is_type_checking(node):
            assert isinstance(node, ast.If)
            todo += node.orelse
            continue
        todo += ast.iter_child_nodes(node)


def _imported(tree: ast.AST, package: str | None) -> Iterable[str]:
    """Every dotted name an import in ``tree`` may load (relative ones resolved
    against ``package``), including ``from a import b``'s ``a.b``."""
    for node in _run_nodes(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                if package is None:
                    continue
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                module = ".".join([*anchor, module] if module else anchor)
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def proxy_modules(workspace: Path) -> dict[str, str]:
    """The sha256 of every source file of ours the proxy's scripts import, by its
    path relative to ``workspace``: followed through imports, packages' ``__init__``
    included (importing ``a.b.c`` runs ``a`` and ``a.b``).

    Raises:
        BackendImageError: A script is missing.
    """
    todo: list[Path] = []
    for script in PROXY_SCRIPTS:
        path = workspace / PROXY_DIR / script
        if not path.is_file():
            raise BackendImageError(f"{path} is missing")
        todo.append(path)
    seen: dict[Path, str] = {}
    scripts = set(todo)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = sha256_file(path)
        name = None if path in scripts else _module_name(workspace, path)
        if name is None:
            package = None
        elif path.name == "__init__.py":
            package = name
        else:
            package = name.rpartition(".")[0]
        for dotted in _imported(ast.parse(path.read_text(), str(path)), package):
            parts = dotted.split(".")
            for depth in range(1, len(parts) + 1):
                found = _module_file(workspace, ".".join(parts[:depth]))
                if found is not None and found not in seen:
                    todo.append(found)
    return {
        path.relative_to(workspace).as_posix(): digest
        for path, digest in sorted(seen.items())
        if path not in scripts
    }


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


# -- the wheelhouse -----------------------------------------------------------------


class SourceWheelTool(Protocol):
    """Builds a wheel from a hash-locked source distribution: ``UvTools``."""

    def wheel_from_source(self, line: str, outdir: Path) -> Path:
        """Download ``line``'s sdist (hash-checked) and build it into ``outdir``."""
        ...


def _built_from_source(store: Path, requirement: LockedRequirement) -> Path | None:
    # <store>/<sdist sha256>/<the wheel built from it>
    for digest in requirement.hashes:
        folder = store / digest.removeprefix("sha256:")
        wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
        if wheels:
            return wheels[0]
    return None


def _build_from_source(
    store: Path, requirement: LockedRequirement, source: SourceWheelTool
) -> Path:
    folder = store / requirement.hashes[0].removeprefix("sha256:")
    logger.info("building %s from its source distribution", requirement.name)
    wheel = source.wheel_from_source(requirement.line(marker=False), folder)
    if not wheel.name.endswith("-none-any.whl"):
        wheel.unlink()
        raise BackendImageError(
            f"{requirement.name}=={requirement.version} has no wheel and its source "
            f"builds a platform wheel ({wheel.name}): only pure-Python sources are "
            "built on the controller's side"
        )
    return wheel


def proxy_wheels(
    requirements: Sequence[LockedRequirement],
    inputs: BuildInputs,
    source: SourceWheelTool,
    target: Path,
) -> list[BuiltWheel]:
    """Put a wheel of every locked requirement into ``target``.

    From the shared pool (downloaded on a miss); a requirement with no wheel for
    CPython 3.11 on manylinux x86-64 is built from its source distribution, kept under
    ``<cache>/wheels/from-source/<sdist sha256>/``.

    Returns:
        The wheels built from source (their hashes are not the lock's: the caller pins
        the bytes built).

    Raises:
        BackendImageError: A requirement has neither a wheel nor a pure-Python sdist
            with a locked hash.
    """
    pool = inputs.cache_dir / "wheels" / f"cp{PROXY_PYTHON.replace('.', '')}"
    store = inputs.cache_dir / "wheels" / "from-source"
    pool.mkdir(parents=True, exist_ok=True)
    target.mkdir(parents=True, exist_ok=True)
    tools = inputs.tools
    index = pool_index(pool)
    built = {
        r.name: wheel
        for r in requirements
        if (wheel := _built_from_source(store, r)) is not None
    }
    missing = [
        r
        for r in requirements
        if r.name not in built and not any(h in index for h in r.hashes)
    ]
    if missing:
        # One hash: only a wheel, or only a source distribution (pyperclip). The
        # others in one download; each of these alone, from source if it has to.
        single = [r for r in missing if len(r.hashes) == 1]
        several = [r for r in missing if len(r.hashes) > 1]
        try:
            fill_pool(several, PROXY_PYTHON, pool, tools)
            alone = single
        except BackendImageError as exc:
            logger.info("one by one, as a download of them all failed: %s", exc)
            alone = missing
        for requirement in alone:
            try:
                fill_pool([requirement], PROXY_PYTHON, pool, tools)
            except BackendImageError:
                built[requirement.name] = _build_from_source(store, requirement, source)
    for wheel in fill_pool(
        [r for r in requirements if r.name not in built], PROXY_PYTHON, pool, tools
    ).values():
        link_or_copy(wheel, target / wheel.name)
    ours: list[BuiltWheel] = []
    for name, wheel in sorted(built.items()):
        link_or_copy(wheel, target / wheel.name)
        version = next(r.version for r in requirements if r.name == name)
        ours.append(BuiltWheel(name, version, target / wheel.name, sha256_file(wheel)))
    return ours


def _pinned(wheels: Iterable[BuiltWheel]) -> list[str]:
    return [
        f"{wheel.name}=={wheel.version} --hash=sha256:{wheel.sha256}"
        for wheel in sorted(wheels, key=lambda wheel: wheel.name)
    ]


def render_proxy_requirements(
    requirements: Sequence[LockedRequirement], from_source: Sequence[BuiltWheel]
) -> str:
    """``requirements.txt``: the lock's lines, those built from source pinned to the
    bytes built."""
    rebuilt = {wheel.name for wheel in from_source}
    lines = [
        "# Generated by beephost_controller.images.egress_proxy from",
        f"# {PROXY_LOCK}: installed offline with --require-hashes.",
        *(r.line() for r in requirements if r.name not in rebuilt),
        *_pinned(from_source),
    ]
    return "\n".join(lines) + "\n"


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
    (wheels / OURS_FILE).write_text("\n".join(_pinned(ours)) + "\n")
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
        context = Path(
            tempfile.mkdtemp(prefix="context-egress-proxy-", dir=self.inputs.cache_dir)
        )
        try:
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
        except ContainerEngineError as exc:
            raise BackendImageError(f"building {self.tag} failed: {exc}") from exc
        finally:
            shutil.rmtree(context, ignore_errors=True)
            with contextlib.suppress(ContainerEngineError):
                runtime.remove_by_labels(
                    {LABEL_KIND: KIND_EGRESS_PROXY_BUILD, LABEL_BUILD_KEY: self.key}
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
