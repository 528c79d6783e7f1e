"""A backend's start on Kubernetes, planned: its row and its Pod's plan, no I/O.

What a start on Docker has and a pod cannot (a host port, a Unix socket shared with
the controller, the controller's admin socket) is refused here, with the reason: a
pipe backend's socket does not cross pods, and an admin environment's code reaches
the controller through a socket only a Docker engine's containers share.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from beephost_controller.egress import secret_names
from beephost_controller.engine.kube_firewall import Destination, ruleset
from beephost_controller.engine.kube_manifests import (
    TOKEN_DIR,
    Placement,
    PodPlan,
    ProbeKind,
    label_value,
)
from beephost_controller.engine.sandbox_env import (
    EGRESS_PORT,
    EGRESS_TRUST_DIR,
    LABEL_BACKEND_ID,
    LABEL_ENVIRONMENT,
    proxy_worker_env,
    sandbox_labels,
    server_environment,
    setting,
)
from beephost_controller.images.layout import (
    CONTAINER_PORTS,
    PACKAGES,
    WORKSPACE,
    healthcheck_command,
    server_command,
)
from beephost_controller.kube_settings import KubernetesSettings
from beephost_controller.rows import BackendRow, EnvironmentRow
from beephost_controller.settings import Settings
from beephost_controller.starts import (
    BackendRequest,
    Minted,
    new_row,
    ready_image,
    resolved_options,
    start_egress,
    token_digest,
)
from beephost_protocol.errors import InvalidRequest, Unavailable

#: The address a row keeps for a pod's backend: no host, no port of the host's.
NO_BIND_ADDRESS = ""
#: The capability whose packet sockets reach the network past nftables' IP hooks.
RAW_PACKETS = "NET_RAW"


#: The pod Secret's key that holds an allow-list backend's WORKER_ENV.
WORKER_ENV_KEY = "worker-env.json"


@dataclass(frozen=True)
class EgressRoute:
    """Where an allow-list backend's pod goes out: the engine's egress proxy."""

    #: The proxy Service's ClusterIP.
    address: str
    #: The proxy pods' labels.
    labels: Mapping[str, str]
    #: The ConfigMap with the sandboxes' trust bundle.
    trust_config_map: str


@dataclass(frozen=True)
class KubePlan:
    """The Kubernetes engine's layout of a start (``BackendPlan.layout``)."""

    pod: PodPlan
    #: The environment's local image, pushed to the registry at launch.
    local_image: str


def pod_name(settings: Settings, backend_id: str) -> str:
    """The name of a backend's Pod, Service and Secret (a DNS-1123 label: the
    controller's name is one, and a backend id is ``b-`` and 12 hex digits)."""
    return f"beephost-{settings.name}-{backend_id}"


def plan(
    request: BackendRequest,
    environment: EnvironmentRow,
    settings: Settings,
    kube: KubernetesSettings,
    *,
    minted: Minted,
    probe: ProbeKind,
    extra_labels: Mapping[str, str] | None = None,
    egress: EgressRoute | None = None,
) -> tuple[BackendRow, KubePlan]:
    """Plan a start of ``request`` on ``environment`` as a pod.

    Args:
        probe: How the kubelet checks an rpc backend (``grpc`` from Kubernetes 1.27,
            else ``exec``); an http one is always checked over HTTP.
        egress: The egress proxy, for a start whose policy is an allow-list.

    Raises:
        InvalidRequest: The environment is not ready, or the start cannot run on a
            cluster (a pipe backend, an admin environment, a host port, ``NET_RAW``
            behind a pod firewall).
        Unavailable: Its egress policy is an allow-list and no proxy is given.
    """
    env = environment
    image = ready_image(env)
    _check(request, env)
    port = CONTAINER_PORTS[request.type]
    assert port is not None  # a pipe backend is refused above
    network_setting, allow = start_egress(request, env)
    if allow is not None and egress is None:
        raise Unavailable(
            "egress allow-lists need the egress proxy, which this engine has not",
            {"engine": "kubernetes", "egress": "allow_list"},
        )
    hardening = resolved_options(request.options, network_setting)
    network = bool(hardening.network)
    # An allow-list backend has no network either: its one way out is the proxy's
    # Service address, which its firewall and NetworkPolicy let through.
    route = egress if allow is not None else None
    opened = () if route is None else (Destination(route.address, EGRESS_PORT),)
    firewall = None if network or not kube.pod_firewall else ruleset(port, opened)
    if firewall is not None and RAW_PACKETS in hardening.cap_add:
        raise InvalidRequest(
            f"{RAW_PACKETS} lets code send packets past a pod's firewall (packet "
            "sockets bypass its rules): a backend without network on Kubernetes "
            f"cannot have it; start it without {RAW_PACKETS}, or with network",
            {"cap_add": RAW_PACKETS, "engine": "kubernetes"},
        )
    limits = request.limits
    name = pod_name(settings, minted.backend_id)
    labels = sandbox_labels(
        settings, minted.backend_id, env.name, request.type, extra_labels
    )
    # An environment's name may end in '.', '-' or '_', which no label value may:
    # the annotation always keeps it, and the selector needs only the backend's id.
    annotations = {LABEL_ENVIRONMENT: env.name}
    if label_value(env.name) is None:
        del labels[LABEL_ENVIRONMENT]
    server_env = server_environment(
        request.type,
        env,
        settings,
        limits,
        controller_token=None,
        network=network,
        egress_env=None
        if route is None
        else proxy_worker_env(
            minted.backend_id,
            minted.egress_token,
            secret_names(allow),
            proxy_host=route.address,
        ),
    )
    secret_files: dict[str, str] = {}
    if route is not None:
        # The proxy credential stays out of the pod's spec: a file of its Secret.
        worker_env = server_env.pop(setting(request.type, "WORKER_ENV"))
        secret_files[WORKER_ENV_KEY] = worker_env
        server_env[setting(request.type, "WORKER_ENV_FILE")] = (
            f"{TOKEN_DIR}/{WORKER_ENV_KEY}"
        )
    row = new_row(
        request,
        env,
        settings,
        minted,
        name=name,
        port=None,
        bind_address=NO_BIND_ADDRESS,
        controller_token=None,
    )
    uid, gid = (int(part) for part in hardening.user.split(":"))
    quota = limits.workspace_quota_bytes
    workspace = settings.workspace_quota_bytes if quota is None else quota
    pod = PodPlan(
        name=name,
        namespace=kube.namespace,
        image=image,
        command=server_command(request.type),
        labels=labels,
        annotations=annotations,
        # The image makes the server listen on its port on every address.
        environment=server_env,
        token_sha256=token_digest(minted.token),
        token_file_setting=setting(request.type, "TOKEN_SHA256_FILE"),
        port=port,
        probe="http" if request.type == "http" else probe,
        healthcheck=healthcheck_command(request.type),
        uid=uid,
        gid=gid,
        memory_mb=limits.memory_mb,
        cpus=limits.cpus,
        tmpfs_mb=hardening.tmpfs_mb,
        workspace_bytes=workspace or None,
        network=network,
        read_only=hardening.read_only,
        cap_add=tuple(hardening.cap_add),
        no_new_privileges=hardening.no_new_privileges,
        selector={LABEL_BACKEND_ID: minted.backend_id},
        workspace_path=WORKSPACE,
        packages_path=PACKAGES,
        placement=placement(kube),
        firewall=firewall,
        secret_files=secret_files,
        egress_to=None if route is None else route.labels,
        egress_port=EGRESS_PORT,
        trust_config_map=None if route is None else route.trust_config_map,
        trust_path=EGRESS_TRUST_DIR,
        no_dns=route is not None,
    )
    return row, KubePlan(pod=pod, local_image=image)


def placement(kube: KubernetesSettings) -> Placement:
    return Placement(
        runtime_class=kube.runtime_class or None,
        node_selector=kube.node_selector,
        tolerations=kube.tolerations,
        affinity=kube.affinity,
        topology_spread=kube.topology_spread,
        image_pull_secrets=kube.image_pull_secrets,
        cpu_request_ratio=kube.cpu_request_ratio,
    )


def _check(request: BackendRequest, env: EnvironmentRow) -> None:
    if request.type == "pipe":
        raise InvalidRequest(
            "a pipe backend cannot run on Kubernetes: its Unix socket does not cross "
            "pods; start an http or rpc backend (the same code runs on each)",
            {"type": request.type, "engine": "kubernetes"},
        )
    if env.admin:
        raise InvalidRequest(
            f"environment {env.name!r} is an admin environment: its code reaches the "
            "controller's Unix socket, which only a Docker engine's containers share",
            {"environment": env.name, "engine": "kubernetes"},
        )
    if request.port is not None or request.bind_address is not None:
        raise InvalidRequest(
            "port and bind_address are host ports of a Docker engine; on Kubernetes "
            "a backend is reached at its Service",
            {"engine": "kubernetes"},
        )
