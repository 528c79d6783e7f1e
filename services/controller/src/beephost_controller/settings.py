"""Controller settings, read from ``BEEPHOST_CONTROLLER_*`` environment variables."""

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from beephost_controller.schemas import (
    MAX_BACKEND_TTL,
    MAX_POOL_SIZE,
    NAME_RULE,
    BackendType,
)

# Docker's reference grammar, reduced to what we accept for our own repositories:
# lowercase path components separated by "/", optionally behind a registry host[:port].
_REPOSITORY_RE = re.compile(
    r"^(?:[a-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
)
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_MINOR_RE = re.compile(r"^3\.[0-9]{1,2}$")


def _default_rootfs_cache_dir() -> Path:
    return Path.home() / ".cache" / "beephost" / "rootfs"


def _default_database() -> Path:
    return Path.home() / ".local" / "share" / "beephost" / "controller.db"


_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class ConsoleBackend(BaseModel):
    """A backend the controller did not start, listed by the console's overview (the
    compose system's three default backends): its container, by name, is read through
    the engine (status, restarts, memory)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Its container's name on the engine.
    container: str = Field(min_length=1, max_length=200)
    type: BackendType
    environment: str = Field("default", min_length=1, max_length=200)
    #: Where clients reach it (shown as it is).
    endpoint: str = Field(min_length=1, max_length=500)


class Settings(BaseSettings):
    """Controller configuration; every field maps to ``BEEPHOST_CONTROLLER_<FIELD>``."""

    # An empty variable is unset (compose passes optional settings through as "").
    model_config = SettingsConfigDict(
        env_prefix="BEEPHOST_CONTROLLER_", extra="ignore", env_ignore_empty=True
    )

    host: str = Field("127.0.0.1", description="Address the REST API binds to.")
    port: int = Field(8600, ge=0, le=65535, description="Port of the REST API.")
    token: SecretStr | None = Field(
        None,
        description=(
            "API token (Authorization: Bearer). Required when the API binds beyond "
            "loopback; the controller refuses to start without one."
        ),
    )
    database: Path = Field(
        default_factory=_default_database,
        description="SQLite file holding runtimes, environments, jobs and backends.",
    )
    engine: Literal["docker", "kubernetes"] = Field(
        "docker",
        description="Where backends run: containers on the Docker engine beside the "
        "controller, or pods on a Kubernetes cluster (BEEPHOST_CONTROLLER_KUBERNETES_*). "
        "Images are built by the Docker engine either way.",
    )
    name: str = Field(
        "default",
        pattern=r"^[a-z0-9][a-z0-9-]{0,30}$",
        description=(
            "This controller's name, put on every container it creates "
            "(io.beephost.controller) and image it builds (io.beephost.image.owner); "
            "reconciliation, prune and image removal only touch its own."
        ),
    )
    pythons: list[str] = Field(
        default_factory=lambda: ["3.11", "3.13", "3.14"],
        description="CPython minor versions offered as runtimes.",
    )
    default_python: str = Field("3.11", description="Runtime used when none is named.")
    environment_repository: str = Field(
        "beephost/env",
        description="Repository of environment images; tags are content hashes.",
    )
    index_url: str | None = Field(
        None, description="Package index for resolving requirements (default PyPI)."
    )
    ca_bundle: Path | None = Field(
        None,
        description="Extra CA bundle (PEM) trusted when resolving and downloading packages.",
    )
    requirement_url_schemes: list[str] = Field(
        default_factory=list,
        description=(
            'JSON list of URL schemes allowed in direct references ("name @ URL") of '
            'environment requirements, e.g. ["https"]; only URLs of wheels (.whl) '
            'build (images are built offline); "file" lets users install from the '
            "controller's file system. Default: none, only index packages. "
            "Environment variables in requirements are never expanded."
        ),
    )
    max_requirements: int = Field(
        1000,
        ge=1,
        le=100_000,
        description=(
            "The most requirements one environment may name (`requirements` and "
            "`requirements_txt` together, after duplicates are merged); more get 400 "
            "invalid_request. The resolver (uv) holds them all in memory: 10,000 "
            "outgrow a controller limited to 1 GiB."
        ),
    )
    max_request_bytes: int = Field(
        1 << 20,
        ge=1024,
        le=1 << 30,
        description=(
            "Largest request body the API reads; a larger one is refused with 413 "
            "too_large before it is read."
        ),
    )
    build_workers: int = Field(2, ge=1, le=16, description="Concurrent image builds.")

    base_image_repository: str = Field(
        default="beephost/python",
        description=(
            "Local repository of the pinned-CPython base images; the tag is the "
            "CPython minor version (beephost/python:3.11)."
        ),
    )
    base_image_registry: str = Field(
        default="",
        description=(
            "Registry and namespace to pull official python:X.Y-slim images from, "
            "pinned by digest (docker.io/library, 127.0.0.1:5000). Empty: build the "
            "base images from Debian packages with mmdebstrap."
        ),
    )
    base_image_digests: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'JSON object {"3.11": "sha256:..."}: the manifest digest to pull per CPython '
            "minor version in registry mode; overrides the built-in table of official "
            "images and is required for versions the table does not know."
        ),
    )
    rootfs_cache_dir: Path = Field(
        default_factory=_default_rootfs_cache_dir,
        description=(
            "Where the Debian root filesystem tarballs (the pinned artifacts that the "
            "base images are imported from) are kept."
        ),
    )
    debian_mirror: str = Field(
        default="http://deb.debian.org/debian",
        description="Debian archive mirror that mmdebstrap downloads packages from.",
    )

    workspace: Path | None = Field(
        None,
        description=(
            "The repository checkout whose servers go into environment images; "
            "found above the working directory if unset."
        ),
    )
    socket_root: Path = Field(
        default_factory=lambda: (
            Path.home() / ".local" / "share" / "beephost" / "sockets"
        ),
        description="Per-backend host directories holding pipe backends' Unix sockets.",
    )
    bind_address: str = Field(
        "127.0.0.1",
        description="Default host address http and rpc backends publish on.",
    )
    ready_timeout: float = Field(
        60.0, gt=0, description="Seconds a backend may take to turn healthy."
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "JSON object of extra labels put on every image, container and network "
            "this controller creates (keys outside io.beephost.*)."
        ),
    )
    backend_image_prefix: str | None = Field(
        None,
        description=(
            "Repository prefix of the backend images environment images are built "
            "from (<prefix>/<type>-backend); default beephost."
        ),
    )
    choose_host_ports: bool = Field(
        True,
        description=(
            "Probe the host for a free port for each http/rpc backend; off when the "
            "controller runs in a container (a port free there says nothing about "
            "the host): it draws one from 20000-32767 then, and the engine refuses a "
            "taken one. Either way the port is kept across restarts."
        ),
    )
    stop_backends_on_shutdown: bool = Field(
        False,
        description=(
            "Remove every backend container on a clean shutdown (compose: `down` "
            "leaves nothing running); off: backends outlive the controller and are "
            "adopted when it starts again."
        ),
    )
    workspace_quota_bytes: int = Field(
        1 << 30,
        ge=0,
        description="Default quota of a backend's workspace (its /workspace volume), "
        "in bytes; 0: none. A start may ask for another (limits.workspace_quota_bytes). "
        "The backend enforces it: an upload past it is refused, and user code cannot "
        "write a file larger than it.",
    )
    restart_limit: int = Field(
        5,
        ge=0,
        le=100,
        description=(
            "Restarts of a crashed or out-of-memory backend (Docker's and the "
            "controller's together) before it stays exited."
        ),
    )
    backend_ttl: float = Field(
        86400.0,
        ge=0,
        le=MAX_BACKEND_TTL,
        description=(
            "Maximum lifetime, in seconds, of a backend whose start names none: then "
            "it is stopped (status stopped, reason expired) and its container, "
            "network and volumes are removed. 0: no limit."
        ),
    )
    backend_idle_timeout: float = Field(
        3600.0,
        ge=0,
        le=MAX_BACKEND_TTL,
        description=(
            "Seconds without a request (health checks do not count) after which a "
            "backend whose start names no idle timeout is stopped (status stopped, "
            "reason idle). 0: never."
        ),
    )
    console_session_ttl: float = Field(
        8 * 3600,
        gt=0,
        le=7 * 24 * 3600,
        description="Seconds a sign-in to the web console (/console) lasts; then it "
        "asks for the token again. Sessions live in the process: a restart ends them.",
    )
    console_backends: list[ConsoleBackend] = Field(
        default_factory=list,
        max_length=50,
        description=(
            "Backends the controller did not start that the console's overview lists "
            'beside its own, as JSON: a list of `{"container": NAME, "type": '
            '"http"|"rpc"|"pipe", "environment": NAME, "endpoint": URL}`; '
            "their status, restarts and memory come from the engine, by container "
            "name. compose.yaml sets it to its three default backends."
        ),
    )
    supervise_interval: float = Field(
        2.0,
        gt=0,
        description="Seconds between two status sweeps over every backend.",
    )
    pool_size: dict[BackendType, int] = Field(
        default_factory=dict,
        description=(
            "Warm pools every ready environment gets (except the admin one), as JSON: "
            'backend type -> ready, unclaimed backends to keep (`{"http": 2}`). A '
            "start with no token, port, bind address, limits or options of its own "
            "claims one in milliseconds. An environment's own setting (`beep-host "
            "venv pool`) replaces it. Pooled backends count against MAX_BACKENDS."
        ),
    )
    relay_pool: int = Field(
        1,
        ge=0,
        le=8,
        description=(
            "Relays made ahead for cold starts of http and rpc backends without "
            "network: each such start makes the next one's relay in the background "
            "(a container started on a free host port), so that the next start of "
            "the same kind (image, limits, user, address) makes only its backend. "
            "Kept for the 4 kinds started last; each holds a host port. 0: none."
        ),
    )
    code_volumes: Literal["auto", "on", "off"] = Field(
        "auto",
        description=(
            "Serve each backend's /usr and /opt (the interpreter, the servers and the "
            "environment's packages) from read-only volumes copied once per image, "
            "shared by its backends. `auto`: on when the engine's storage driver is "
            "`fuse-overlayfs` or `vfs`, whose containers each read their image's "
            "files afresh (a cold start about 35% shorter there, and an idle "
            "backend's page cache shared); `on`; `off`."
        ),
    )
    max_backends: int = Field(
        0,
        ge=0,
        description=(
            "Backends that may exist at once, pooled ones included (a start beyond "
            "it: 429 quota_exceeded; a pool is not refilled beyond it). 0: no limit."
        ),
    )
    pipe_socket_group: int | None = Field(
        None,
        ge=0,
        le=(1 << 32) - 2,
        description=(
            "A host group (gid) whose members may connect to backends' Unix sockets "
            "(a pipe backend's endpoint; the http and rpc servers' second one): their "
            "directories and sockets get it. Default: the controller's group "
            "when it is not root; root and the servers' user only when it is. Its "
            "members also need to reach SOCKET_ROOT."
        ),
    )
    admin_socket_dir: Path | None = Field(
        None,
        description=(
            "Directory of the controller's Unix socket that admin backends reach it "
            "through (mounted into their containers); default: <socket_root>/controller."
        ),
    )

    secrets_dir: Path | None = Field(
        None,
        description=(
            "Directory of the stored secrets (`beep-host secret set`): one file per "
            "secret, mode 0600, in a directory of mode 0700, never returned by the "
            "API; default: <the database's directory>/secrets. Back it up apart from "
            "the database, or not at all."
        ),
    )
    egress_internal_ranges: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'JSON object of named internal address ranges (`{"data-service": '
            '"10.1.2.0/24"}`) an egress allow-list may name as CIDRs inside them; '
            "any other private, shared, loopback, link-local, multicast or metadata "
            "range is refused (docs/operators/egress.md)."
        ),
    )
    egress_proxy_network: str = Field(
        "bridge",
        description=(
            "The Docker network the egress proxy joins to reach the destinations "
            "allow-lists name (no sandbox ever joins it); its gateway is blocked "
            "to the proxy (the host's services)."
        ),
    )
    egress_hosts: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description=(
            "JSON object of host names and the address the egress proxy uses for "
            'each instead of DNS (`{"api.example.test": "172.18.0.5"}`), or a list '
            "of addresses (every one is checked, as DNS answers are): services "
            "without DNS, or a test's fake internet. Each address is still checked "
            "like a DNS answer (private ranges need EGRESS_INTERNAL_RANGES)."
        ),
    )
    egress_upstream_ca_bundle: Path | None = Field(
        None,
        description=(
            "A PEM bundle the egress proxy trusts for the destinations' TLS instead "
            "of the public CAs it ships (certifi's): services behind a private CA, or "
            "a test's fake internet. Copied into the proxy's state when it starts. "
            "Unset: the public CAs."
        ),
    )

    @property
    def admin_socket(self) -> Path:
        """The controller's Unix socket for admin backends (mounted in their containers)."""
        return (self.admin_socket_dir or self.socket_root / "controller") / "api.sock"

    @property
    def secret_directory(self) -> Path:
        """Where the stored secrets are kept."""
        return self.secrets_dir or self.database.parent / "secrets"

    @field_validator("egress_internal_ranges")
    @classmethod
    def _check_internal_ranges(cls, value: dict[str, str]) -> dict[str, str]:
        for name, cidr in value.items():
            if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", name):
                raise ValueError(f"internal range name: {NAME_RULE}, not {name!r}")
            try:
                ipaddress.ip_network(cidr)
            except ValueError as exc:
                raise ValueError(f"internal range {name}: {exc}") from None
        return value

    @field_validator("egress_hosts")
    @classmethod
    def _check_egress_hosts(
        cls, value: dict[str, str | list[str]]
    ) -> dict[str, str | list[str]]:
        for name, answer in value.items():
            addresses = [answer] if isinstance(answer, str) else answer
            if not addresses:
                raise ValueError(f"egress host {name!r}: no address")
            for address in addresses:
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    raise ValueError(
                        f"egress host {name!r}: not an IP address: {address!r}"
                    ) from None
        return {name.lower().rstrip("."): answer for name, answer in value.items()}

    @field_validator("base_image_repository")
    @classmethod
    def _check_repository(cls, value: str) -> str:
        if not _REPOSITORY_RE.match(value):
            raise ValueError(f"not a valid lowercase image repository: {value!r}")
        return value

    @field_validator("requirement_url_schemes")
    @classmethod
    def _check_schemes(cls, value: list[str]) -> list[str]:
        schemes = [scheme.strip().lower().removesuffix(":") for scheme in value]
        for scheme in schemes:
            if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
                raise ValueError(f"not a URL scheme: {scheme!r}")
        return schemes

    @field_validator("base_image_registry")
    @classmethod
    def _check_registry(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        _host, _, path = value.partition("/")
        if "://" in value or "@" in value or ":" in path:
            raise ValueError(
                "base_image_registry is a registry host and namespace such as "
                f"docker.io/library, without scheme, tag or digest: {value!r}"
            )
        return value

    @field_validator("pool_size")
    @classmethod
    def _check_pool_sizes(cls, value: dict[BackendType, int]) -> dict[BackendType, int]:
        for kind, size in value.items():
            if not 0 <= size <= MAX_POOL_SIZE:
                raise ValueError(
                    f"pool size of {kind}: 0 to {MAX_POOL_SIZE}, not {size}"
                )
        return value

    @field_validator("base_image_digests")
    @classmethod
    def _check_digests(cls, value: dict[str, str]) -> dict[str, str]:
        for minor, digest in value.items():
            if not _MINOR_RE.match(minor):
                raise ValueError(
                    f"digest key must be a CPython minor version: {minor!r}"
                )
            if not _DIGEST_RE.match(digest):
                raise ValueError(
                    f"digest for {minor} must be sha256:<64 hex digits>, never a tag: "
                    f"{digest!r}"
                )
        return value

    @field_validator("debian_mirror")
    @classmethod
    def _check_mirror(cls, value: str) -> str:
        if not value.startswith(("http://", "https://", "file://")):
            raise ValueError(f"debian_mirror must be an http(s) or file URL: {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _token_beyond_loopback(self) -> "Settings":
        if self.host not in _LOOPBACK and self.token is None:
            raise ValueError(
                f"the API binds to {self.host}: set BEEPHOST_CONTROLLER_TOKEN "
                "(a token is required beyond loopback)"
            )
        if self.default_python not in self.pythons:
            raise ValueError(f"default_python {self.default_python} is not in pythons")
        return self
