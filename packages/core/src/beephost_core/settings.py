"""Settings every backend shares: the core's limits and the token, one definition.

Each backend subclasses :class:`BackendSettings` with its own ``env_prefix`` and adds its
transport's fields; ``executor_config()`` turns them into the core's ExecutorConfig.
"""

import ipaddress
import json
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from beephost_core.config import (
    ExecutorConfig,
    base_interpreter,
    checked_worker_env,
)
from beephost_core.envsettings import EnvSettings
from beephost_core.tokens import TokenCheck, is_token_sha256

#: What ``executor_config`` passes on by name: every setting an ExecutorConfig has.
_EXECUTOR_FIELDS = {field.name for field in fields(ExecutorConfig)}


class BackendSettings(EnvSettings):
    """The fields common to the pipe, HTTP and gRPC backends."""

    # An admin backend's worker_env holds the controller's token.
    hidden_inputs: ClassVar[frozenset[str]] = frozenset({"worker_env"})

    token: SecretStr | None = Field(
        None,
        description="If set, every request must present it (fail closed); printable "
        "ASCII without spaces (it travels in HTTP and gRPC headers).",
    )
    token_sha256: SecretStr | None = Field(
        None,
        description="Instead of TOKEN: its hex SHA-256, so that the process environment "
        "(which every docker exec'd process, the health check included, inherits) never "
        "holds the token itself. The controller passes its backends this.",
    )
    token_sha256_file: Path | None = Field(
        None,
        description="Instead of TOKEN_SHA256: a file that holds it (a Kubernetes "
        "Secret mounted as a file keeps it out of the process environment and the "
        "pod's spec). Read once, at start.",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address of the /metrics HTTP server."
    )
    python: str = Field(
        default_factory=base_interpreter,
        description="The environment's interpreter that runs user code.",
    )
    environment: str = Field(
        "local", description="Environment name reported to clients."
    )
    worker_cwd: str | None = Field(
        None, description="Working directory of workers (default: the workspace)."
    )
    workspace_dir: str | None = Field(
        None,
        description="The workspace: user code's working directory and HOME, and what "
        "the file API serves (default: a temporary directory, removed at exit).",
    )
    packages_dir: str | None = Field(
        None,
        description="A directory of packages installed at run time (the controller's "
        "install): on user code's sys.path after the environment's own, seen by every "
        "session at its next import (default: none).",
    )
    activity_file: str | None = Field(
        None,
        description="A file the server writes its idle seconds to, every second (0 "
        "while a request runs): the health check prints it, for the controller's idle "
        "timeout. Default: none.",
    )
    workspace_quota_bytes: int = Field(
        1 << 30,
        ge=0,
        description="The most bytes the workspace's files may take (0: no limit): "
        "uploads past it fail with quota_exceeded, and user code cannot write a "
        "larger file.",
    )
    default_timeout: float = Field(
        30.0, gt=0, description="Deadline when none is given."
    )
    max_timeout: float = Field(3600.0, gt=0, description="Upper bound on any deadline.")
    kill_grace: float = Field(
        2.0, gt=0, description="Seconds before an interrupted worker is killed."
    )
    max_sessions: int = Field(64, ge=1, description="Open sessions, default included.")
    session_ttl: float = Field(
        600.0, gt=0, description="Idle seconds before a session expires."
    )
    max_session_ttl: float = Field(
        86400.0, gt=0, description="Upper bound on a requested TTL."
    )
    max_handles: int = Field(1000, ge=1, description="Live handles per session.")
    lease_ttl: float = Field(
        60.0,
        ge=0.1,
        le=3600.0,
        description="HTTP and gRPC: seconds without a request or renewal after which a "
        "client's lease expires and the handles it created in the default session are "
        "released (over the pipe, the connection owns them).",
    )
    max_output_bytes: int = Field(
        1 << 20, ge=1, description="Captured stdout/stderr per request."
    )
    max_result_bytes: int = Field(
        16 << 20, ge=1024, description="Encoded reply size per request."
    )
    max_display_bytes: int = Field(
        4 << 20,
        ge=1,
        description="Each MIME value of a rich output (display(), plots); a larger one "
        "is left out and named in the output's metadata.dropped.",
    )
    max_display_total_bytes: int = Field(
        8 << 20,
        ge=1,
        description="Rich outputs of one request together; past it, values are left out "
        "and named the same way (keep it under MAX_RESULT_BYTES).",
    )
    prewarm: int = Field(
        1,
        ge=0,
        description="Spare workers kept ready for new sessions, once a client has "
        "opened one (until then an idle backend holds only its default session's).",
    )
    drain_timeout: float = Field(
        10.0, ge=0, description="Seconds to finish requests on SIGTERM."
    )
    worker_env: dict[str, str] = Field(
        {},
        description="Extra environment variables for user code (JSON object); the "
        "controller passes admin backends their controller URL and token this way.",
    )
    worker_env_file: Path | None = Field(
        None,
        description="More of WORKER_ENV, from a file holding a JSON object (a "
        "Kubernetes Secret mounted as a file keeps an allow-list backend's proxy "
        "credential out of the pod's spec); its names win. Read once, at start.",
    )

    egress_socket: str | None = Field(
        None,
        description="The egress proxy's Unix socket (the controller mounts it into a "
        "backend whose egress policy is an allow-list): user code's only way out is "
        "127.0.0.1:EGRESS_PORT, relayed to it. Unset: no relay.",
    )
    egress_port: int = Field(
        3128,
        ge=1,
        le=65535,
        description="The loopback port relayed to EGRESS_SOCKET (user code's "
        "HTTP_PROXY names it).",
    )

    @field_validator("token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty variable must not silently mean "no auth".
        if value is None:
            return None
        secret = value.get_secret_value()
        if not secret:
            raise ValueError("the token is empty; unset the variable to disable auth")
        if not (secret.isascii() and secret.isprintable()) or " " in secret:
            raise ValueError("the token must be printable ASCII without spaces")
        return value

    @field_validator("token_sha256")
    @classmethod
    def _digest_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not is_token_sha256(value.get_secret_value()):
            raise ValueError("not a SHA-256: 64 hexadecimal characters")
        return value

    @model_validator(mode="after")
    def _one_token_form(self) -> "BackendSettings":
        given = [self.token, self.token_sha256, self.token_sha256_file]
        if sum(value is not None for value in given) > 1:
            raise ValueError("set one of TOKEN, TOKEN_SHA256 and TOKEN_SHA256_FILE")
        if self.token_sha256_file is not None:
            try:
                digest = self.token_sha256_file.read_text().strip()
            except OSError as exc:
                raise ValueError(f"TOKEN_SHA256_FILE cannot be read: {exc}") from exc
            if not is_token_sha256(digest):
                raise ValueError(
                    "TOKEN_SHA256_FILE does not hold a SHA-256: 64 hexadecimal characters"
                )
            self.token_sha256 = SecretStr(digest)
        if self.worker_env_file is not None:
            self.worker_env = {
                **self.worker_env,
                **_read_worker_env(self.worker_env_file),
            }
        return self

    def token_check(self) -> TokenCheck | None:
        """How requests are authenticated; None when no token is set (loopback only)."""
        if self.token is not None:
            return TokenCheck.of_token(self.token.get_secret_value())
        if self.token_sha256 is not None:
            return TokenCheck.of_sha256(self.token_sha256.get_secret_value())
        return None

    @property
    def requires_token(self) -> bool:
        return self.token is not None or self.token_sha256 is not None

    @field_validator("worker_env")
    @classmethod
    def _worker_env_names(cls, value: dict[str, str]) -> dict[str, str]:
        return checked_worker_env(value)

    def executor_config(self) -> ExecutorConfig:
        # The limits have the same names here and in ExecutorConfig; the paths are
        # named for the operator here (WORKSPACE_DIR) and for the core there.
        return ExecutorConfig(
            **self.model_dump(include=_EXECUTOR_FIELDS),
            cwd=self.worker_cwd,
            workspace=self.workspace_dir,
            workspace_quota=self.workspace_quota_bytes,
            packages=self.packages_dir,
            extra_env=dict(self.worker_env),
        )


def _read_worker_env(path: Path) -> dict[str, str]:
    """WORKER_ENV_FILE's object (its values are never quoted: they are credentials)."""
    try:
        loaded = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"WORKER_ENV_FILE cannot be read: {exc.strerror}") from None
    except ValueError:
        raise ValueError("WORKER_ENV_FILE does not hold JSON") from None
    return checked_worker_env(loaded, "WORKER_ENV_FILE")


class NetworkBackendSettings(BackendSettings):
    """A backend that listens on a TCP port (HTTP, gRPC): fails closed beyond loopback.

    The subclass defines ``host`` and ``allow_unauthenticated`` (their defaults and
    descriptions are its own); see :func:`refuse_open_port`.
    """

    if TYPE_CHECKING:  # fields of the subclass
        host: str
        allow_unauthenticated: bool

    socket_path: Path | None = Field(
        None,
        description="Also listen on this Unix socket (mode 0660; its directory's "
        "group shares it): how the controller reaches a backend in a container, "
        "and how a backend without network is published (through a relay).",
    )

    @model_validator(mode="after")
    def _no_open_network_port(self) -> Self:
        # Fail closed: this service runs arbitrary code for whoever can reach it.
        refuse_open_port(
            self.host,
            self.requires_token,
            self.allow_unauthenticated,
            self.model_config.get("env_prefix", ""),
        )
        return self


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps a server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def refuse_open_port(host: str, has_token: bool, allowed: bool, prefix: str) -> None:
    """Fail closed: a code-running server beyond loopback needs a token.

    Raises:
        ValueError: ``host`` is not loopback, no token is set and ``allowed`` is False.
    """
    if not has_token and not allowed and not is_loopback(host):
        raise ValueError(
            f"refusing to listen on {host} without a token: set {prefix}TOKEN "
            f"(or {prefix}ALLOW_UNAUTHENTICATED=true)"
        )
