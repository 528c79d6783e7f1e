"""What every engine gives a backend's server, whatever runs it: its labels and its
settings (``BEEPHOST_<TYPE>_BACKEND_*``). Pure: the engines' planners
(``docker_plan.py``, ``kube_plan.py``) add only what is their own (the token's digest
as a variable or a file, sockets, relays, ports)."""

import json
from collections.abc import Mapping
from urllib.parse import urlsplit

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
) -> dict[str, str]:
    """The server's settings every engine passes (its token is the engine's to
    pass: a digest in a variable, or a file)."""
    worker_env = {
        **admin_worker_env(controller_token),
        **package_index_env(settings, network=network),
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
