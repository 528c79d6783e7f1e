"""Environment images: the three backend servers plus an environment's locked packages.

An environment image is built on the runtime's three backend images (each built or
found with ``ensure_backend_image``), offline, with a generated two-stage Dockerfile:

* a build stage on the base image makes ``/opt/env`` (``venv --without-pip``) and
  installs the environment's lock into it from a host-made wheelhouse
  (``--offline --no-index --require-hashes``, never the network);
* the final stage starts from the pipe backend image (its server venv stays at
  ``/opt/beephost``) and copies the http and rpc servers' venvs to
  ``/opt/beephost-http`` and ``/opt/beephost-rpc`` and ``/opt/env`` next to them.

A venv is not relocatable by its console scripts (their shebangs name the old path),
but ``<venv>/bin/python -m <module>`` finds its ``pyvenv.cfg`` from the executable's
path: the controller starts the copied servers that way (``server_command``).

Every server's ``BEEPHOST_*_PYTHON`` is ``/opt/env/bin/python``: user code runs with
exactly the environment's packages, and none of the servers' (no fastapi, no grpcio).

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from beephost_controller.runtime.backend_images import (
    BACKEND_KINDS,
    LABEL_BUILD_KEY,
    LABEL_CODE_VERSION,
    BackendImage,
    BackendImageError,
    BackendKind,
    LockedRequirement,
    WheelhouseTools,
    _fill_pool,
    _link_or_copy,
    _locked,
    backend_package,
    code_version,
    ensure_backend_image,
    parse_export,
    python_minor_of,
    source_tree_hash,
)
from beephost_controller.runtime.base import ContainerRuntime, ContainerRuntimeError
from beephost_controller.runtime.base_images import (
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_PYTHON_VERSION,
    BaseImage,
    check_label_keys,
)

logger = logging.getLogger(__name__)

KIND_ENVIRONMENT_IMAGE = "environment-image"
KIND_ENVIRONMENT_BUILD = "environment-build"
LABEL_ENVIRONMENT_LOCK = "io.beephost.environment.lock"
#: Where the environment's packages live in the image.
ENV_PREFIX = "/opt/env"
ENV_PYTHON = f"{ENV_PREFIX}/bin/python"
#: Bumped when the generated Dockerfile changes shape.
ENVIRONMENT_LAYOUT = "1"

#: Each server's venv inside an environment image.
SERVER_VENVS: Mapping[BackendKind, str] = {
    "pipe": "/opt/beephost",
    "http": "/opt/beephost-http",
    "rpc": "/opt/beephost-rpc",
}
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


def lock_requirements(lock_text: str) -> tuple[LockedRequirement, ...]:
    """The pinned, hashed requirements of a ``uv pip compile --generate-hashes`` lock."""
    if not any(
        line.strip() and not line.lstrip().startswith("#")
        for line in lock_text.splitlines()
    ):
        return ()
    return parse_export(lock_text).requirements


def render_dockerfile(
    backends: Mapping[BackendKind, BackendImage],
    base_image_id: str,
    *,
    python_version: str,
    code: str,
    lock_digest: str,
    build_key: str,
    install: bool,
) -> str:
    """The environment image's Dockerfile (legacy builder, no network, two stages)."""
    install_cmd = (
        "if [ -x /wheels/uv ]; then \\\n"
        "        UV_CACHE_DIR=/tmp/uv-cache UV_NO_CONFIG=1 UV_PYTHON_DOWNLOADS=never \\\n"
        f"        /wheels/uv pip install --quiet --python {ENV_PYTHON} \\\n"
        "            --offline --no-index --find-links /wheels --require-hashes --no-build \\\n"
        "            --compile-bytecode --link-mode=copy -r /wheels/requirements.txt; \\\n"
        "        rm -rf /tmp/uv-cache; \\\n"
        "    else \\\n"
        "        set -- /usr/share/python-wheels/pip-*.whl; \\\n"
        f'        {ENV_PYTHON} "$1/pip" install --quiet --no-cache-dir \\\n'
        "            --disable-pip-version-check --no-index --find-links /wheels \\\n"
        "            --require-hashes --only-binary=:all: -r /wheels/requirements.txt; \\\n"
        "    fi"
        if install
        else "true"
    )
    env = {
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
    labels = {
        LABEL_MANAGED: "true",
        LABEL_KIND: KIND_ENVIRONMENT_IMAGE,
        LABEL_ENVIRONMENT_LOCK: lock_digest,
        LABEL_CODE_VERSION: code,
        LABEL_PYTHON_VERSION: python_version,
        LABEL_BUILD_KEY: build_key,
    }
    env_lines = " \\\n    ".join(f"{k}={json.dumps(v)}" for k, v in env.items())
    label_lines = " \\\n      ".join(
        f"{json.dumps(k)}={json.dumps(v)}" for k, v in labels.items()
    )
    return f"""\
# Generated by beephost_controller.runtime.environment_images (layout {ENVIRONMENT_LAYOUT}).
FROM {backends["http"].image_id} AS http
FROM {backends["rpc"].image_id} AS rpc
FROM {base_image_id} AS build
LABEL {LABEL_KIND}={KIND_ENVIRONMENT_BUILD} {LABEL_BUILD_KEY}={build_key}
COPY wheels/ /wheels/
RUN set -eu; \\
    python3 -m venv --without-pip {ENV_PREFIX}; \\
    {install_cmd}

FROM {backends["pipe"].image_id}
USER 0:0
COPY --from=http /opt/beephost {SERVER_VENVS["http"]}
COPY --from=rpc /opt/beephost {SERVER_VENVS["rpc"]}
COPY --from=build {ENV_PREFIX} {ENV_PREFIX}
ENV {env_lines}
LABEL {label_lines}
HEALTHCHECK NONE
ENTRYPOINT []
CMD []
USER 10001:10001
"""


@dataclass(frozen=True)
class EnvironmentImage:
    tag: str
    image_id: str
    code_version: str
    built: bool
    seconds: float
    size: int = 0


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
    log: Callable[[str], None] = lambda _line: None,
) -> EnvironmentImage:
    """Build (or find) the environment image ``tag`` for ``lock_text`` on ``base``.

    ``extra_labels`` go on the backend images too (they are part of their build key);
    ``backend_repository_prefix`` puts those in ``<prefix>/<kind>-backend`` instead of
    the default ``beephost/<kind>-backend`` (tests keep the real ones untouched).

    Raises:
        BackendImageError: A backend image, a wheel or the build failed.
    """
    started = time.monotonic()
    extra = dict(extra_labels or {})
    check_label_keys(extra)
    code = workspace_code_version(workspace, tools)
    existing = runtime.get_image(tag)
    if existing is not None:
        return EnvironmentImage(
            tag, existing.id, code, False, time.monotonic() - started, existing.size
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
    minor = python_minor_of(base.python_version)
    requirements = lock_requirements(lock_text)
    key = hashlib.sha256(
        json.dumps(
            {
                "layout": ENVIRONMENT_LAYOUT,
                "base": base.image_id,
                "backends": {k: b.image_id for k, b in backends.items()},
                "lock": lock_digest,
                "labels": extra,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()
    dockerfile = render_dockerfile(
        backends,
        base.image_id,
        python_version=base.python_version,
        code=code,
        lock_digest=lock_digest,
        build_key=key,
        install=bool(requirements),
    )
    with _locked(cache_dir):
        context = Path(tempfile.mkdtemp(prefix="context-env-", dir=cache_dir))
        try:
            wheels = context / "wheels"
            wheels.mkdir()
            if requirements:
                pool = cache_dir / "wheels" / f"cp{minor.replace('.', '')}"
                log(
                    f"wheelhouse: {len(requirements)} locked wheel(s) for CPython {minor}"
                )
                found = _fill_pool(requirements, minor, pool, tools)
                for wheel in found.values():
                    _link_or_copy(wheel, wheels / wheel.name)
                (wheels / "requirements.txt").write_text(
                    "\n".join(r.line() for r in requirements) + "\n"
                )
                _, uv_binary = tools.installer()
                if uv_binary is not None:
                    shutil.copy2(uv_binary, wheels / "uv")
            (context / "Dockerfile").write_text(dockerfile)
            log(f"building {tag} offline")
            try:
                info = runtime.build_image(
                    context, dockerfile="Dockerfile", tag=tag, labels=extra
                )
            except ContainerRuntimeError as exc:
                raise BackendImageError(f"building {tag} failed: {exc}") from exc
        finally:
            shutil.rmtree(context, ignore_errors=True)
            try:
                runtime.remove_by_labels(
                    {LABEL_KIND: KIND_ENVIRONMENT_BUILD, LABEL_BUILD_KEY: key}
                )
            except ContainerRuntimeError as exc:
                logger.warning(
                    "could not remove build-stage images of %s: %s", tag, exc
                )
    seconds = time.monotonic() - started
    log(f"built {tag} in {seconds:.1f} s ({info.size / 1e6:.0f} MB)")
    return EnvironmentImage(tag, info.id, code, True, seconds, info.size)
