"""Environment images: the three backend servers plus an environment's locked packages.

Two images, so that a new environment costs one container run, not a Dockerfile build:

* the **servers image** (one per base image and three backend images, built once with
  the legacy builder, offline, content-addressed like the backend images:
  ``<prefix>/servers:<X.Y>-<key>``): the pipe backend image (its server venv stays at
  ``/opt/beephost``) with the http and rpc servers' venvs copied to
  ``/opt/beephost-http`` and ``/opt/beephost-rpc``, every server's environment
  variables, no entrypoint nor health check of its own, user 10001, and an empty venv
  at ``/opt/env`` (``venv --without-pip``): an environment without requirements needs
  no install;
* the **environment image**: the servers image plus one layer, made by one container
  (``ContainerRuntime.commit_run``): as root, without network, the host-made
  wheelhouse copied in at ``/wheels``, it installs the environment's lock into
  ``/opt/env`` (``--offline --no-index --require-hashes``, never the network), removes
  ``/wheels`` and is committed with the image's labels and user 10001. No build cache,
  no per-instruction commits, no copy of the servers' venvs per environment.

A venv is not relocatable by its console scripts (their shebangs name the old path),
but ``<venv>/bin/python -m <module>`` finds its ``pyvenv.cfg`` from the executable's
path: the controller starts the copied servers that way (``server_command``).

Every server's ``BEEPHOST_*_PYTHON`` is ``/opt/env/bin/python``: user code runs with
exactly the environment's packages, and none of the servers' (no fastapi, no grpcio).

The ``admin`` environment's image also carries the client SDK in ``/opt/env`` (user code
there drives the controller with ``beephost_client.ControllerClient``): the wheels of
``beephost-protocol`` and ``beephost-client`` are built from the workspace and
installed after the lock with ``--no-deps``, pinned by hash in ``sdk.txt``; their one
third-party dependency (pydantic) is part of the lock (the controller resolves the
admin environment's requirements together with the SDK's).

The image has no ENTRYPOINT and no HEALTHCHECK of its own: the controller gives each
container the command and health check of the backend it runs (``server_command``,
``healthcheck_command``).
"""

import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from beephost_controller.ports import (
    ContainerRuntime,
    ContainerRuntimeError,
    ImageInfo,
)
from beephost_controller.runtime.backend_images import (
    BACKEND_KINDS,
    LABEL_BUILD_KEY,
    LABEL_CODE_VERSION,
    BackendImage,
    BackendImageError,
    BackendKind,
    BuiltWheel,
    LockedRequirement,
    WheelhouseTools,
    _fill_pool,
    _link_or_copy,
    _locked,
    backend_package,
    code_version,
    ensure_backend_image,
    image_tag,
    parse_export,
    python_minor_of,
    sha256_file,
    source_tree_hash,
    wheel_name_version,
)
from beephost_controller.runtime.base_images import (
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_PYTHON_VERSION,
    BaseImage,
    check_label_keys,
)

logger = logging.getLogger(__name__)

KIND_SERVERS_IMAGE = "servers-image"
KIND_ENVIRONMENT_IMAGE = "environment-image"
#: On the container (and leftovers) of an environment image's install.
KIND_ENVIRONMENT_BUILD = "environment-build"
LABEL_ENVIRONMENT_LOCK = "io.beephost.environment.lock"
#: On admin images: the hash of the client SDK's source trees they carry.
LABEL_ENVIRONMENT_SDK = "io.beephost.environment.sdk"
#: On environment images: the id of the servers image they are one layer on.
LABEL_SERVERS_IMAGE = "io.beephost.servers.image"
#: Where the environment's packages live in the image.
ENV_PREFIX = "/opt/env"
ENV_PYTHON = f"{ENV_PREFIX}/bin/python"
#: Bumped when the images change shape (2: a servers image, and one committed layer).
ENVIRONMENT_LAYOUT = "2"
#: The user every server and user code runs as.
SERVER_USER = "10001:10001"
#: Where the install container finds the wheelhouse (removed before the commit).
WHEELHOUSE = "/wheels"
#: Seconds the install of one environment may take.
INSTALL_TIMEOUT = 900.0

#: Each server's venv inside an environment image.
SERVER_VENVS: Mapping[BackendKind, str] = {
    "pipe": "/opt/beephost",
    "http": "/opt/beephost-http",
    "rpc": "/opt/beephost-rpc",
}
#: The client SDK's workspace members an admin image carries in /opt/env.
SDK_MEMBERS = ("packages/protocol", "packages/client")
#: The SDK's pinned wheels, next to the lock's requirements.txt in the wheelhouse.
SDK_REQUIREMENTS_FILE = "sdk.txt"

#: Port each server listens on inside the container (None: a Unix socket).
CONTAINER_PORTS: Mapping[BackendKind, int | None] = {
    "pipe": None,
    "http": 5678,
    "rpc": 50051,
}


def server_module(kind: BackendKind) -> str:
    return f"beephost_{kind}_backend"


def server_command(kind: BackendKind) -> list[str]:
    """argv of a backend's server in an environment image."""
    return [f"{SERVER_VENVS[kind]}/bin/python", "-m", server_module(kind)]


def healthcheck_command(kind: BackendKind) -> list[str]:
    """The server's own health probe (its ``healthcheck`` subcommand)."""
    return [*server_command(kind), "healthcheck"]


def workspace_code_version(workspace: Path, tools: WheelhouseTools) -> str:
    """One hash over the source trees of every package in the three servers.

    Equal for every runtime: it only depends on our code, not on a base image.
    """
    members: dict[str, str] = {}
    for kind in BACKEND_KINDS:
        export = parse_export(tools.export(workspace, backend_package(kind)))
        for member in export.members:
            members[member] = source_tree_hash(workspace / member)
    return code_version(members)


def sdk_code_version(workspace: Path) -> str:
    """One hash over the client SDK's source trees (what an admin image adds)."""
    return code_version(
        {member: source_tree_hash(workspace / member) for member in SDK_MEMBERS}
    )


def render_sdk_requirements(wheels: Sequence[BuiltWheel]) -> str:
    """``sdk.txt``: the SDK's own wheels, pinned to the exact bytes built."""
    lines = [
        "# Generated by beephost_controller.runtime.environment_images: installed with",
        "# --no-deps after requirements.txt (which holds their dependencies).",
    ]
    lines += [
        f"{wheel.name}=={wheel.version} --hash=sha256:{wheel.sha256}"
        for wheel in sorted(wheels, key=lambda wheel: wheel.name)
    ]
    return "\n".join(lines) + "\n"


def _install_command(requirements_file: str, *, no_deps: bool) -> str:
    """Install one hash-pinned requirements file of /wheels into /opt/env, offline."""
    deps = " --no-deps" if no_deps else ""
    return (
        f"if [ -x {WHEELHOUSE}/uv ]; then \\\n"
        "        UV_CACHE_DIR=/tmp/uv-cache UV_NO_CONFIG=1 UV_PYTHON_DOWNLOADS=never \\\n"
        f"        {WHEELHOUSE}/uv pip install --quiet --python {ENV_PYTHON} \\\n"
        f"            --offline --no-index --find-links {WHEELHOUSE} --require-hashes --no-build \\\n"
        f"            --compile-bytecode --link-mode=copy{deps} -r {WHEELHOUSE}/{requirements_file}; \\\n"
        "        rm -rf /tmp/uv-cache; \\\n"
        "    else \\\n"
        "        set -- /usr/share/python-wheels/pip-*.whl; \\\n"
        f'        {ENV_PYTHON} "$1/pip" install --quiet --no-cache-dir \\\n'
        f"            --disable-pip-version-check --no-index --find-links {WHEELHOUSE} \\\n"
        f"            --require-hashes --only-binary=:all:{deps} -r {WHEELHOUSE}/{requirements_file}; \\\n"
        "    fi"
    )


def lock_requirements(lock_text: str) -> tuple[LockedRequirement, ...]:
    """The pinned, hashed requirements of a ``uv pip compile --generate-hashes`` lock."""
    if not any(
        line.strip() and not line.lstrip().startswith("#")
        for line in lock_text.splitlines()
    ):
        return ()
    return parse_export(lock_text).requirements


# -- the servers image -----------------------------------------------------------------


def server_environment() -> dict[str, str]:
    """The servers' variables (over the pipe image's): every interpreter is /opt/env's."""
    return {
        "BEEPHOST_PIPE_BACKEND_PYTHON": ENV_PYTHON,
        "BEEPHOST_HTTP_BACKEND_PYTHON": ENV_PYTHON,
        "BEEPHOST_HTTP_BACKEND_WORKER_CWD": "/tmp",
        "BEEPHOST_HTTP_BACKEND_HOST": "0.0.0.0",
        "BEEPHOST_HTTP_BACKEND_PORT": str(CONTAINER_PORTS["http"]),
        "BEEPHOST_RPC_BACKEND_PYTHON": ENV_PYTHON,
        "BEEPHOST_RPC_BACKEND_WORKER_CWD": "/tmp",
        "BEEPHOST_RPC_BACKEND_HOST": "0.0.0.0",
        "BEEPHOST_RPC_BACKEND_PORT": str(CONTAINER_PORTS["rpc"]),
        "BEEPHOST_RPC_BACKEND_METRICS_HOST": "0.0.0.0",
        "BEEPHOST_RPC_BACKEND_METRICS_PORT": "9465",
    }


def render_servers_dockerfile(backends: Mapping[BackendKind, BackendImage]) -> str:
    """The servers image's Dockerfile (legacy builder, no network, nothing to pull).

    Its labels come from the build (``ensure_servers_image``), as one instruction.
    """
    env_lines = " \\\n    ".join(
        f"{k}={json.dumps(v)}" for k, v in server_environment().items()
    )
    return f"""\
# Generated by beephost_controller.runtime.environment_images (layout {ENVIRONMENT_LAYOUT}).
FROM {backends["http"].image_id} AS http
FROM {backends["rpc"].image_id} AS rpc
FROM {backends["pipe"].image_id}
USER 0:0
COPY --from=http /opt/beephost {SERVER_VENVS["http"]}
COPY --from=rpc /opt/beephost {SERVER_VENVS["rpc"]}
RUN python3 -m venv --without-pip {ENV_PREFIX}
ENV {env_lines}
HEALTHCHECK NONE
ENTRYPOINT []
CMD []
USER {SERVER_USER}
"""


def servers_repository(backend_repository_prefix: str | None) -> str:
    """``<prefix>/servers`` next to the backend images; ``beephost/servers`` by default."""
    return f"{backend_repository_prefix or 'beephost'}/servers"


def servers_build_key(
    base_image_id: str,
    backends: Mapping[BackendKind, BackendImage],
    dockerfile: str,
    extra_labels: Mapping[str, str],
) -> str:
    """The hex sha256 that names a servers image: equal inputs give equal keys."""
    payload = {
        "layout": ENVIRONMENT_LAYOUT,
        "base": base_image_id,
        "backends": {kind: image.image_id for kind, image in backends.items()},
        "dockerfile": hashlib.sha256(dockerfile.encode()).hexdigest(),
        "labels": dict(sorted(extra_labels.items())),
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


@dataclass(frozen=True)
class ServersImage:
    tag: str
    image_id: str
    build_key: str
    built: bool
    seconds: float


def ensure_servers_image(
    *,
    base: BaseImage,
    backends: Mapping[BackendKind, BackendImage],
    runtime: ContainerRuntime,
    code: str,
    cache_dir: Path,
    extra_labels: Mapping[str, str] | None = None,
    backend_repository_prefix: str | None = None,
    log: Callable[[str], None] = lambda _line: None,
) -> ServersImage:
    """Build (or find) the servers image of ``base`` and its three ``backends``.

    Content-addressed: ``<prefix>/servers:<X.Y>-<key>``, where the key hashes the base
    and backend image ids, the Dockerfile and ``extra_labels``; a tag with that key
    is used as it is. Serialised with the backend builds (the lock in ``cache_dir``).

    Raises:
        BackendImageError: The build failed.
    """
    started = time.monotonic()
    extra = dict(extra_labels or {})
    dockerfile = render_servers_dockerfile(backends)
    key = servers_build_key(base.image_id, backends, dockerfile, extra)
    tag = image_tag(
        servers_repository(backend_repository_prefix),
        python_minor_of(base.python_version),
        key,
    )
    with _locked(cache_dir):
        existing = runtime.get_image(tag)
        if existing is not None and _is_servers_image(existing, key):
            return ServersImage(
                tag, existing.id, key, False, time.monotonic() - started
            )
        labels = {
            **extra,
            LABEL_MANAGED: "true",
            LABEL_KIND: KIND_SERVERS_IMAGE,
            LABEL_BUILD_KEY: key,
            LABEL_CODE_VERSION: code,
            LABEL_PYTHON_VERSION: base.python_version,
        }
        log(f"building the servers image {tag}")
        context = Path(tempfile.mkdtemp(prefix="context-servers-", dir=cache_dir))
        try:
            (context / "Dockerfile").write_text(dockerfile)
            try:
                info = runtime.build_image(
                    context, dockerfile="Dockerfile", tag=tag, labels=labels
                )
            except ContainerRuntimeError as exc:
                raise BackendImageError(f"building {tag} failed: {exc}") from exc
        finally:
            shutil.rmtree(context, ignore_errors=True)
    if not _is_servers_image(info, key):
        raise BackendImageError(f"{tag} was built without its build-key label")
    seconds = time.monotonic() - started
    logger.info("built %s in %.1f s", tag, seconds)
    return ServersImage(tag, info.id, key, True, seconds)


def _is_servers_image(info: ImageInfo, key: str) -> bool:
    return (
        info.labels.get(LABEL_KIND) == KIND_SERVERS_IMAGE
        and info.labels.get(LABEL_BUILD_KEY) == key
    )


# -- the environment image -------------------------------------------------------------


def install_script(*, install: bool, sdk: bool) -> str:
    """The install container's ``sh -c`` script: the lock, then the SDK, into /opt/env.

    ``install``: the wheelhouse has a ``requirements.txt`` (a non-empty lock). ``sdk``:
    it has ``sdk.txt`` (the SDK's wheels, installed after the lock without
    dependencies). Files are created with umask 022: readable by the servers' user.
    The wheelhouse is removed at the end, so the committed layer holds /opt/env only.
    """
    steps = ["set -eu", "umask 022"]
    if install:
        steps.append(_install_command("requirements.txt", no_deps=False))
    if sdk:
        steps.append(_install_command(SDK_REQUIREMENTS_FILE, no_deps=True))
    steps.append(f"rm -rf {WHEELHOUSE}")
    return "\n".join(steps) + "\n"


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


def commit_changes(labels: Mapping[str, str]) -> list[str]:
    """The commit's Dockerfile instructions: the servers' user, then one LABEL each.

    Keys are plain (``check_label_keys``); values are double-quoted, with the three
    characters the engine's LABEL parser interprets there (``\\``, ``"``, ``$``)
    escaped: a ``$HOME`` in a label stays ``$HOME``.
    """
    return [f"USER {SERVER_USER}"] + [
        f"LABEL {key}={quote_label_value(value)}" for key, value in labels.items()
    ]


def quote_label_value(value: str) -> str:
    """``value`` as a double-quoted Dockerfile word that expands to exactly itself."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


@dataclass(frozen=True)
class EnvironmentImage:
    tag: str
    image_id: str
    code_version: str
    built: bool
    seconds: float
    size: int = 0
    sdk: str | None = None


def ensure_environment_image(
    *,
    base: BaseImage,
    lock_text: str,
    lock_digest: str,
    tag: str,
    runtime: ContainerRuntime,
    workspace: Path,
    cache_dir: Path,
    tools: WheelhouseTools,
    extra_labels: Mapping[str, str] | None = None,
    backend_repository_prefix: str | None = None,
    sdk: bool = False,
    log: Callable[[str], None] = lambda _line: None,
) -> EnvironmentImage:
    """Build (or find) the environment image ``tag`` for ``lock_text`` on ``base``.

    ``extra_labels`` go on the backend and servers images too (they are part of their
    build keys); ``backend_repository_prefix`` puts those in ``<prefix>/<kind>-backend``
    and ``<prefix>/servers`` instead of the default ``beephost/...`` (tests keep the
    real ones untouched). ``sdk`` adds the client SDK (``SDK_MEMBERS``) to
    ``/opt/env``, for the admin environment; the lock must hold its dependencies
    (pydantic), and ``tag`` must address the SDK too (the caller's content address).

    Raises:
        BackendImageError: A backend or servers image, a wheel or the install failed.
    """
    started = time.monotonic()
    extra = dict(extra_labels or {})
    check_label_keys(extra)
    code = workspace_code_version(workspace, tools)
    sdk_version = sdk_code_version(workspace) if sdk else None
    existing = runtime.get_image(tag)
    if existing is not None:
        return EnvironmentImage(
            tag,
            existing.id,
            code,
            False,
            time.monotonic() - started,
            existing.size,
            sdk_version,
        )
    backends: dict[BackendKind, BackendImage] = {}
    for kind in BACKEND_KINDS:
        backends[kind] = ensure_backend_image(
            kind,
            base,
            runtime,
            workspace=workspace,
            cache_dir=cache_dir,
            tools=tools,
            repository=(
                f"{backend_repository_prefix}/{kind}-backend"
                if backend_repository_prefix
                else None
            ),
            extra_labels=extra,
        )
        log(
            f"{kind} backend image {backends[kind].tag} "
            f"({'built' if backends[kind].built else 'cached'})"
        )
    servers = ensure_servers_image(
        base=base,
        backends=backends,
        runtime=runtime,
        code=code,
        cache_dir=cache_dir,
        extra_labels=extra,
        backend_repository_prefix=backend_repository_prefix,
        log=log,
    )
    log(
        f"servers image {servers.tag} "
        + (f"(built in {servers.seconds:.1f} s)" if servers.built else "(cached)")
    )
    minor = python_minor_of(base.python_version)
    requirements = lock_requirements(lock_text)
    key = hashlib.sha256(
        json.dumps(
            {
                "layout": ENVIRONMENT_LAYOUT,
                "base": base.image_id,
                "backends": {k: b.image_id for k, b in backends.items()},
                "servers": servers.image_id,
                "lock": lock_digest,
                "labels": extra,
                "sdk": sdk_version,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()
    labels = environment_labels(
        lock_digest=lock_digest,
        code=code,
        python_version=base.python_version,
        build_key=key,
        servers_image_id=servers.image_id,
        sdk=sdk_version,
        extra_labels=extra,
    )
    build_labels = {
        **extra,
        LABEL_KIND: KIND_ENVIRONMENT_BUILD,
        LABEL_BUILD_KEY: key,
    }
    with _locked(cache_dir):
        if not requirements and not sdk:
            # Nothing to install: the servers image's empty /opt/env is the environment.
            log(f"building {tag} offline")
            try:
                info = runtime.build_labelled_image(servers.image_id, tag, labels)
            except ContainerRuntimeError as exc:
                raise BackendImageError(f"building {tag} failed: {exc}") from exc
        else:
            info = _install(
                tag=tag,
                servers=servers,
                requirements=requirements,
                minor=minor,
                sdk_version=sdk_version,
                labels=labels,
                build_labels=build_labels,
                runtime=runtime,
                workspace=workspace,
                cache_dir=cache_dir,
                tools=tools,
                log=log,
            )
    seconds = time.monotonic() - started
    log(f"built {tag} in {seconds:.1f} s ({info.size / 1e6:.0f} MB)")
    return EnvironmentImage(tag, info.id, code, True, seconds, info.size, sdk_version)


def _install(
    *,
    tag: str,
    servers: ServersImage,
    requirements: Sequence[LockedRequirement],
    minor: str,
    sdk_version: str | None,
    labels: Mapping[str, str],
    build_labels: Mapping[str, str],
    runtime: ContainerRuntime,
    workspace: Path,
    cache_dir: Path,
    tools: WheelhouseTools,
    log: Callable[[str], None],
) -> ImageInfo:
    """The wheelhouse, then one install container on the servers image, committed."""
    wheels = Path(tempfile.mkdtemp(prefix="wheels-env-", dir=cache_dir))
    try:
        if requirements:
            pool = cache_dir / "wheels" / f"cp{minor.replace('.', '')}"
            log(f"wheelhouse: {len(requirements)} locked wheel(s) for CPython {minor}")
            found = _fill_pool(requirements, minor, pool, tools)
            for wheel in found.values():
                _link_or_copy(wheel, wheels / wheel.name)
            (wheels / "requirements.txt").write_text(
                "\n".join(r.line() for r in requirements) + "\n"
            )
        if sdk_version is not None:
            built = [_built_wheel(workspace, m, wheels, tools) for m in SDK_MEMBERS]
            (wheels / SDK_REQUIREMENTS_FILE).write_text(render_sdk_requirements(built))
            log(
                "client SDK: "
                + ", ".join(f"{w.name} {w.version}" for w in built)
                + f" (source {sdk_version})"
            )
        _, uv_binary = tools.installer()
        if uv_binary is not None:
            shutil.copy2(uv_binary, wheels / "uv")
        script = install_script(install=bool(requirements), sdk=sdk_version is not None)
        log(f"building {tag} offline")
        try:
            return runtime.commit_run(
                servers.image_id,
                ["/bin/sh", "-c", script],
                tag=tag,
                user="0:0",
                files={wheels: WHEELHOUSE},
                labels=build_labels,
                changes=commit_changes(labels),
                timeout=INSTALL_TIMEOUT,
            )
        except ContainerRuntimeError as exc:
            raise BackendImageError(f"building {tag} failed: {exc}") from exc
    finally:
        shutil.rmtree(wheels, ignore_errors=True)
        try:
            # The install container is removed by commit_run; this finds one that a
            # failure there left behind.
            runtime.remove_by_labels(build_labels)
        except ContainerRuntimeError as exc:
            logger.warning("could not remove the install container of %s: %s", tag, exc)


def _built_wheel(
    workspace: Path, member: str, outdir: Path, tools: WheelhouseTools
) -> BuiltWheel:
    path = tools.build_wheel(workspace, member, outdir)
    name, version = wheel_name_version(path.name)
    return BuiltWheel(name, version, path, sha256_file(path))
