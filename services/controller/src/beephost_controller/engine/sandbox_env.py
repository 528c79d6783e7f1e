"""What every engine gives a backend's server, whatever runs it: its labels and its
settings (``BEEPHOST_<TYPE>_BACKEND_*``). Pure: the engines' planners
(``docker_plan.py``, ``kube_plan.py``) add only what is their own (the token's digest
as a variable or a file, sockets, relays, ports)."""

import json
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, urlsplit

from beephost_controller.images.labels import LABEL_CONTROLLER, LABEL_MANAGED
from beephost_controller.images.layout import CA_BUNDLE_PATH, settings_prefix
from beephost_controller.rows import EnvironmentRow
from beephost_controller.schemas import BackendLimits, BackendType
from beephost_controller.settings import Settings

LABEL_ENVIRONMENT = "io.beephost.environment"
LABEL_BACKEND_ID = "io.beephost.backend"
LABEL_BACKEND_TYPE = "io.beephost.backend.type"

#: Where admin backends reach the controller: its Unix socket, mounted in their container.
ADMIN_CONTROLLER_URL = "unix:///run/beephost-controller/api.sock"

#: Where a backend's server writes its idle seconds (its /tmp is a tmpfs of its own).
ACTIVITY_FILE = "/tmp/beephost-activity"

#: An allow-list backend's way out: the egress proxy's socket directory, mounted
#: read-only (``<SOCKET_ROOT>/egress/socket/``), and the socket in it.
EGRESS_SOCKET_DIR = "/run/beephost-egress"
EGRESS_SOCKET = f"{EGRESS_SOCKET_DIR}/proxy.sock"
#: The trust bundle user code verifies TLS with (public CAs + the proxy's CA),
#: mounted read-only (``<SOCKET_ROOT>/egress/trust/``).
EGRESS_TRUST_DIR = "/run/beephost-egress-trust"
EGRESS_BUNDLE = f"{EGRESS_TRUST_DIR}/ca-bundle.pem"
#: The loopback port the backend's server relays to the socket (core EGRESS_PORT).
EGRESS_PORT = 3128
#: What a secret's marker variable holds: a placeholder, meaningless elsewhere.
SECRET_MARKER_PREFIX = "beephost-secret:"
#: Variables the proxy wiring sets, which no secret's marker may replace.
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
)
TRUST_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "CURL_CA_BUNDLE")
#: Names a marker never takes: the wiring's own, and what every worker relies on.
RESERVED_VARIABLES = frozenset(
    {
        *(name.upper() for name in PROXY_VARIABLES),
        *TRUST_VARIABLES,
        "HOME",
        "PATH",
        "PYTHONPATH",
        "LANG",
        "LC_ALL",
        "TZ",
        "ALL_PROXY",
    }
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def selector(settings: Settings) -> dict[str, str]:
    """The labels of everything this controller manages for its backends."""
    return {LABEL_MANAGED: "true", LABEL_CONTROLLER: settings.name}


def sandbox_labels(
    settings: Settings,
    backend_id: str,
    environment: str,
    kind: BackendType,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A backend's sandbox's labels: the controller's, its id, environment and type."""
    return {
        **(extra or {}),
        **selector(settings),
        LABEL_ENVIRONMENT: environment,
        LABEL_BACKEND_ID: backend_id,
        LABEL_BACKEND_TYPE: kind,
    }


def setting(kind: BackendType, name: str) -> str:
    """The variable of a ``kind`` server's setting ``name``."""
    return f"{settings_prefix(kind)}{name}"


def server_environment(
    kind: BackendType,
    env: EnvironmentRow,
    settings: Settings,
    limits: BackendLimits,
    *,
    controller_token: str | None,
    network: bool,
    egress_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The server's settings every engine passes (its token is the engine's to
    pass: a digest in a variable, or a file); ``egress_env``: an allow-list
    backend's ``proxy_worker_env``, for its user code."""
    worker_env = {
        **admin_worker_env(controller_token),
        **package_index_env(settings, network=network),
        **(egress_env or {}),
    }
    quota = limits.workspace_quota_bytes
    environment = {
        # Its idle seconds, for the health check to print (the idle timeout).
        setting(kind, "ACTIVITY_FILE"): ACTIVITY_FILE,
        # What session.info() says the backend serves (pipe.md: ``environment``).
        setting(kind, "ENVIRONMENT"): env.name,
        setting(kind, "WORKSPACE_QUOTA_BYTES"): str(
            settings.workspace_quota_bytes if quota is None else quota
        ),
    }
    if worker_env:
        environment[setting(kind, "WORKER_ENV")] = json.dumps(worker_env)
    return environment


def admin_worker_env(controller_token: str | None) -> dict[str, str]:
    if controller_token is None:
        return {}
    return {
        "BEEPHOST_CONTROLLER_URL": ADMIN_CONTROLLER_URL,
        "BEEPHOST_CONTROLLER_TOKEN": controller_token,
    }


def package_index_env(settings: Settings, *, network: bool) -> dict[str, str]:
    """What pip and uv run by user code read to install from where the controller does:
    its index and CA bundle. Only for a backend with network (without, nothing could
    use them), and never an index URL with credentials (user code would read them)."""
    if not network:
        return {}
    env: dict[str, str] = {}
    if settings.index_url:
        parts = urlsplit(settings.index_url)
        if parts.username is None and parts.password is None:
            env |= {"PIP_INDEX_URL": settings.index_url}
            env |= {"UV_DEFAULT_INDEX": settings.index_url}
    if settings.ca_bundle is not None:
        for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT"):
            env[name] = CA_BUNDLE_PATH
    return env


def secret_variable(secret: str) -> str | None:
    """The marker variable of a stored secret (``weather-key`` → ``WEATHER_KEY``), or
    None when the name would be a reserved variable (or no variable name at all)."""
    name = secret.upper().replace("-", "_").replace(".", "_")
    if not _ENV_NAME.fullmatch(name) or name in RESERVED_VARIABLES:
        return None
    if name.startswith("BEEPHOST_"):
        return None
    return name


def proxy_worker_env(
    backend_id: str,
    egress_token: str,
    secrets: Iterable[str],
    proxy_host: str = "127.0.0.1",
) -> dict[str, str]:
    """What user code of an allow-list backend is given: the proxy variables naming
    the proxy (the loopback relay on Docker, the proxy's Service on Kubernetes) with
    the backend's credential, the trust bundle, and one
    marker variable per secret the policy names (its value a placeholder: the proxy
    adds the real one on the way out; names a reserved variable would take are
    skipped)."""
    credential = f"{quote(backend_id, safe='')}:{quote(egress_token, safe='')}"
    proxy = f"http://{credential}@{proxy_host}:{EGRESS_PORT}"
    env = dict.fromkeys(PROXY_VARIABLES[:4], proxy)
    env |= {
        "NO_PROXY": "localhost,127.0.0.1,::1",
        "no_proxy": "localhost,127.0.0.1,::1",
    }
    env |= dict.fromkeys(TRUST_VARIABLES, EGRESS_BUNDLE)
    for secret in secrets:
        variable = secret_variable(secret)
        if variable is not None and variable not in env:
            env[variable] = f"{SECRET_MARKER_PREFIX}{secret}"
    return env


def proxy_server_env(kind: BackendType) -> dict[str, str]:
    """The server's settings that make it relay the loopback port to the proxy."""
    return {
        setting(kind, "EGRESS_SOCKET"): EGRESS_SOCKET,
        setting(kind, "EGRESS_PORT"): str(EGRESS_PORT),
    }
