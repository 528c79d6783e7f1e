"""The image contract: image kinds, where things live in the images, how servers run.

Imported by the builders (which lay the images out so) and by the backend lifecycle
(``backends.py``, which starts containers of them): the server venvs, the user, the
ports, the server command lines and health checks, the environment's prefix, and the
paths of the Dockerfiles and wheelhouses in the repository.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Literal, get_args

from beephost_controller.images.errors import BackendImageError
from beephost_controller.schemas import BACKEND_TYPES, BackendType

#: Every kind built from a service Dockerfile: the three backends and the controller.
ImageKind = Literal[BackendType, "controller"]
IMAGE_KINDS: tuple[ImageKind, ...] = get_args(ImageKind)
CONTROLLER: Literal["controller"] = "controller"

#: The server's numeric user and group inside the images (Dockerfile ``USER``).
SERVER_UID = 10001
#: The user every server and user code runs as.
SERVER_USER = f"{SERVER_UID}:{SERVER_UID}"
#: Where the server's virtualenv lives in the backend images.
SERVER_PREFIX = "/opt/beephost"
#: Each server's venv inside a servers (and so an environment) image.
SERVER_VENVS: Mapping[BackendType, str] = {
    "pipe": SERVER_PREFIX,
    "http": f"{SERVER_PREFIX}-http",
    "rpc": f"{SERVER_PREFIX}-rpc",
}
#: Port each server listens on inside the container (None: a Unix socket).
CONTAINER_PORTS: Mapping[BackendType, int | None] = {
    "pipe": None,
    "http": 5678,
    "rpc": 50051,
}
#: Port each server's metrics listen on inside the container (http: its own port).
METRICS_PORTS: Mapping[BackendType, int | None] = {
    "pipe": 9464,
    "http": None,
    "rpc": 9465,
}
#: Where the pipe server's socket is, in a directory clients share.
PIPE_SOCKET = "/run/beephost/pipe.sock"
#: Where each server listens on a Unix socket, in the directory it shares with the
#: controller: the pipe's only way in; the http and rpc servers' second one, which
#: the controller probes (from its own container, a host port is out of reach) and a
#: relay publishes for a backend without network.
SERVER_SOCKETS: Mapping[BackendType, str] = {
    "pipe": PIPE_SOCKET,
    "http": "/run/beephost/http.sock",
    "rpc": "/run/beephost/rpc.sock",
}
#: The URL scheme of each server's protocol over its Unix socket (the SDK's).
SOCKET_SCHEMES: Mapping[BackendType, str] = {
    "pipe": "unix",
    "http": "http+unix",
    "rpc": "grpc+unix",
}
#: The one setting that makes each server listen where its container's clients reach
#: it (ports are the servers' defaults, CONTAINER_PORTS and METRICS_PORTS).
LISTEN_SETTINGS: Mapping[BackendType, tuple[str, str]] = {
    "pipe": ("SOCKET_PATH", PIPE_SOCKET),
    "http": ("HOST", "0.0.0.0"),
    "rpc": ("HOST", "0.0.0.0"),
}
#: A backend's workspace: its user code's working directory and HOME, and what the
#: file API serves. A per-backend volume is mounted here (the root is read-only).
WORKSPACE = "/workspace"
#: Packages installed at run time (``install``): a per-backend volume, its ``site``
#: directory on user code's sys.path; staged beside it, moved in whole.
PACKAGES = "/packages"
PACKAGES_SITE = f"{PACKAGES}/site"
#: A backend with network: the controller's CA bundle, for user code's installs.
CA_BUNDLE_PATH = f"{PACKAGES}/ca-bundle.pem"
#: Where the environment's packages live in the image.
ENV_PREFIX = "/opt/env"
ENV_PYTHON = f"{ENV_PREFIX}/bin/python"
#: Where an environment's install container finds the wheelhouse (removed before the
#: commit).
WHEELHOUSE = "/wheels"
#: The client SDK's workspace members an admin image carries in /opt/env.
SDK_MEMBERS = ("packages/protocol", "packages/client")
#: The SDK's pinned wheels, next to the lock's requirements.txt in the wheelhouse.
SDK_REQUIREMENTS_FILE = "sdk.txt"


def backend_kind(kind: str) -> BackendType:
    """Validate a backend kind.

    Raises:
        BackendImageError: Not one of ``pipe``, ``http``, ``rpc``.
    """
    return BACKEND_TYPES[_index(kind, BACKEND_TYPES)]


def image_kind(kind: str) -> ImageKind:
    """Validate an image kind: a backend, or ``controller``.

    Raises:
        BackendImageError: Not one of ``pipe``, ``http``, ``rpc``, ``controller``.
    """
    return IMAGE_KINDS[_index(kind, IMAGE_KINDS)]


def _index(kind: str, known: tuple[str, ...]) -> int:
    if kind not in known:
        raise BackendImageError(
            f"unknown backend {kind!r}; expected one of {', '.join(known)}"
        )
    return known.index(kind)


def service_name(kind: ImageKind) -> str:
    """The service directory (and package suffix): ``<kind>-backend`` or ``controller``."""
    return CONTROLLER if kind == CONTROLLER else f"{kind}-backend"


def backend_package(kind: ImageKind) -> str:
    """The workspace package (and console script) of a backend or the controller."""
    return f"beephost-{service_name(kind)}"


#: Workspace packages the controller's image installs beside the controller: the MCP
#: server (compose's ``mcp`` service and the chart's ``mcp`` component run this image
#: with ``beephost-mcp`` as the entrypoint). One image to build, scan and ship; it
#: carries every member's sources already, so none of its rebuilds is extra.
CONTROLLER_IMAGE_EXTRAS = ("beephost-mcp",)


def image_packages(kind: ImageKind) -> tuple[str, ...]:
    """The workspace packages an image of ``kind`` installs (its ``uv export``)."""
    if kind == CONTROLLER:
        return (backend_package(kind), *CONTROLLER_IMAGE_EXTRAS)
    return (backend_package(kind),)


#: The three backends' one Dockerfile; ``backend_dockerfile_args`` picks the kind.
BACKEND_DOCKERFILE = "services/backend.Dockerfile"


def dockerfile_path(kind: ImageKind) -> str:
    """The image's Dockerfile, relative to the repository root."""
    return (
        "services/controller/Dockerfile" if kind == CONTROLLER else BACKEND_DOCKERFILE
    )


def settings_prefix(kind: BackendType) -> str:
    """The prefix of a backend server's settings variables."""
    return f"BEEPHOST_{kind.upper()}_BACKEND_"


def backend_dockerfile_args(kind: BackendType) -> dict[str, str]:
    """The build arguments that make ``BACKEND_DOCKERFILE`` the image of ``kind``."""
    setting, value = LISTEN_SETTINGS[kind]
    ports = (CONTAINER_PORTS[kind], METRICS_PORTS[kind])
    return {
        "KIND": kind,
        "SETTINGS_PREFIX": settings_prefix(kind),
        "LISTEN_SETTING": setting,
        "LISTEN_VALUE": value,
        "PORTS": " ".join(str(port) for port in ports if port is not None),
    }


#: The install steps every service Dockerfile's build stage runs, relative to the
#: repository root; the wheelhouse carries a copy named ``INSTALL_SCRIPT_NAME``.
INSTALL_SCRIPT = "services/install-server.sh"
INSTALL_SCRIPT_NAME = "install-server.sh"


def wheelhouse_path(kind: ImageKind) -> str:
    """Where the Dockerfile expects the wheelhouse, relative to the context root."""
    return f"build/wheelhouse/{service_name(kind)}"


def default_repository(kind: ImageKind) -> str:
    """The local repository: ``beephost/<kind>-backend`` or ``beephost/controller``."""
    return f"beephost/{service_name(kind)}"


def servers_repository(backend_repository_prefix: str | None) -> str:
    """``<prefix>/servers`` next to the backend images; ``beephost/servers`` by default."""
    return f"{backend_repository_prefix or 'beephost'}/servers"


def server_module(kind: BackendType) -> str:
    return f"beephost_{kind}_backend"


def server_command(kind: BackendType) -> list[str]:
    """argv of a backend's server in an environment image.

    A venv is not relocatable by its console scripts (their shebangs name the old
    path), but ``<venv>/bin/python -m <module>`` finds its ``pyvenv.cfg`` from the
    executable's path.
    """
    return [f"{SERVER_VENVS[kind]}/bin/python", "-m", server_module(kind)]


def relay_command(kind: BackendType) -> list[str]:
    """argv of the relay that publishes a backend without network: its container
    port to its server's Unix socket (``beephost_core.relay``, in the server's venv)."""
    port = CONTAINER_PORTS[kind]
    assert port is not None, f"a {kind} backend has no port to relay"
    python = f"{SERVER_VENVS[kind]}/bin/python"
    return [python, "-m", "beephost_core.relay", str(port), SERVER_SOCKETS[kind]]


def healthcheck_command(kind: BackendType) -> list[str]:
    """The server's own health probe (its ``healthcheck`` subcommand)."""
    return [*server_command(kind), "healthcheck"]


def server_environment() -> dict[str, str]:
    """The servers' variables in an environment image: each server's settings as its
    backend image sets them, but every interpreter is /opt/env's."""
    environment = {"HOME": WORKSPACE}
    for kind in BACKEND_TYPES:
        prefix = settings_prefix(kind)
        setting, value = LISTEN_SETTINGS[kind]
        environment |= {
            f"{prefix}PYTHON": ENV_PYTHON,
            f"{prefix}WORKER_CWD": WORKSPACE,
            f"{prefix}WORKSPACE_DIR": WORKSPACE,
            f"{prefix}PACKAGES_DIR": PACKAGES_SITE,
            f"{prefix}METRICS_HOST": "0.0.0.0",
            f"{prefix}{setting}": value,
        }
    return environment


def default_cache_dir() -> Path:
    """``~/.cache/beephost/backend-images``: the wheel pool and transient contexts."""
    return Path.home() / ".cache" / "beephost" / "backend-images"


def find_workspace(start: Path | None = None) -> Path:
    """The uv workspace root at or above ``start`` (the current directory).

    Raises:
        BackendImageError: No ``pyproject.toml`` with ``[tool.uv.workspace]`` above.
    """
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text():
            return directory
    raise BackendImageError(f"no uv workspace at or above {here}")
