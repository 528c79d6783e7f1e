"""Settings of the MCP server, read from BEEPHOST_MCP_* variables.

Two ways to get a sandbox: a fixed backend (``BACKEND_URL`` and ``BACKEND_TOKEN``,
stdio only: one user) or a controller's warm pool of an environment (``CONTROLLER_URL``,
``CONTROLLER_TOKEN``, ``ENVIRONMENT``), one backend per MCP session.
"""

import ipaddress
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BackendKind = Literal["http", "pipe", "rpc"]
#: The HTTP server's liveness path (no token, no session): compose's healthcheck
#: (``beephost-mcp healthcheck``) and the chart's probes.
HEALTH_PATH = "/health"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Limits(BaseSettings):
    """What one tool result may put in the model's context."""

    model_config = SettingsConfigDict(env_prefix="BEEPHOST_MCP_", extra="ignore")

    max_output_chars: int = Field(
        20_000,
        ge=200,
        description="stdout, stderr and the result's text, each: longer "
        "text is cut in the middle, with a note of what was cut.",
    )
    max_images: int = Field(
        4,
        ge=0,
        description="Images of one run sent as image content; the rest are counted.",
    )
    max_image_bytes: int = Field(
        2 << 20,
        ge=1024,
        description="Largest image sent, decoded; larger ones are counted.",
    )
    max_html_chars: int = Field(
        20_000, ge=200, description="HTML of a table sent as text, cut like the output."
    )
    max_read_bytes: int = Field(
        1 << 20, ge=1024, description="Largest file read_file returns."
    )


class Settings(Limits):
    """Every knob of the MCP server."""

    model_config = SettingsConfigDict(env_prefix="BEEPHOST_MCP_", extra="ignore")

    transport: Literal["stdio", "http"] = Field(
        "stdio", description="How clients connect."
    )
    # The fixed backend (stdio).
    backend_url: str | None = Field(
        None, description="A backend to use instead of a pool."
    )
    backend_token: SecretStr | None = Field(
        None, description="The fixed backend's token."
    )
    # The controller's pool.
    controller_url: str | None = Field(None, description="The controller's URL.")
    controller_token: SecretStr | None = Field(
        None, description="The controller's token."
    )
    environment: str | None = Field(None, description="The environment sandboxes run.")
    backend_type: BackendKind = Field("http", description="The sandboxes' transport.")
    # What the server sets up on the controller (compose's mcp service, the chart's).
    create_environment: bool = Field(
        False,
        description="Create ENVIRONMENT on the controller when it is missing (at "
        "start, and again before a claim if that failed); an existing one is used "
        "as it is.",
    )
    environment_requirements: list[str] = Field(
        default_factory=list,
        description="Requirements (a JSON list) of the environment the server creates.",
    )
    environment_egress: dict[str, Any] | None = Field(
        None,
        description='An egress allow-list (JSON: {"allow": [{"host": '
        '"api.example.com"}]}, docs/operators/egress.md) of the environment the '
        "server creates; default: none, no network. Enforced on Docker (its "
        "sandboxes reach the listed destinations through the egress proxy); the "
        "Kubernetes engine refuses their starts.",
    )
    pool_size: int = Field(
        0,
        ge=0,
        le=64,
        description="Warm sandboxes of ENVIRONMENT and BACKEND_TYPE the server asks the "
        "controller to keep, at start; 0: the pool is left as it is.",
    )
    build_timeout: float = Field(
        1800.0, gt=0, description="Seconds the environment's build may take."
    )
    # Sandboxes.
    idle_timeout: float = Field(
        900.0, gt=0, description="Idle seconds after which a session's sandbox stops."
    )
    default_timeout: float = Field(
        60.0, gt=0, description="run_python's default deadline."
    )
    max_timeout: float = Field(
        600.0, gt=0, description="The longest deadline a call may ask."
    )
    install_timeout: float = Field(
        600.0, gt=0, description="Seconds an install may take."
    )
    # Streamable HTTP.
    host: str = Field("127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(8700, ge=0, le=65535, description="Its port; 0 picks a free one.")
    path: str = Field("/mcp", description="The MCP endpoint's path.")
    token: SecretStr | None = Field(
        None, description="The bearer token HTTP clients must send."
    )
    allow_unauthenticated: bool = Field(
        False, description="Serve HTTP without a token (loopback only)."
    )
    max_sessions: int = Field(64, ge=1, description="Open MCP sessions at most (HTTP).")

    @property
    def pooled(self) -> bool:
        """Whether sandboxes come from the controller (else the fixed backend)."""
        return self.backend_url is None

    @model_validator(mode="after")
    def _safe(self) -> Self:
        if self.backend_url is not None:
            if self.transport == "http":
                raise ValueError(
                    "a fixed backend (BEEPHOST_MCP_BACKEND_URL) would be shared by every "
                    "HTTP session: use the controller's pool (BEEPHOST_MCP_ENVIRONMENT)"
                )
            if self.create_environment or self.pool_size:
                raise ValueError(
                    "BEEPHOST_MCP_CREATE_ENVIRONMENT and BEEPHOST_MCP_POOL_SIZE need the "
                    "controller's pool (BEEPHOST_MCP_ENVIRONMENT), not a fixed backend"
                )
        elif self.environment is None:
            raise ValueError(
                "set BEEPHOST_MCP_ENVIRONMENT (sandboxes from the controller's pool) or "
                "BEEPHOST_MCP_BACKEND_URL (one fixed backend, stdio)"
            )
        if self.default_timeout > self.max_timeout:
            raise ValueError(
                "BEEPHOST_MCP_DEFAULT_TIMEOUT exceeds BEEPHOST_MCP_MAX_TIMEOUT"
            )
        if self.transport == "http" and self.token is None:
            if not self.allow_unauthenticated:
                raise ValueError(
                    "streamable HTTP needs BEEPHOST_MCP_TOKEN (clients send it as a "
                    "bearer token); without one, set BEEPHOST_MCP_ALLOW_UNAUTHENTICATED=true "
                    "and a loopback BEEPHOST_MCP_HOST"
                )
            if not is_loopback(self.host):
                raise ValueError(
                    f"refusing to serve without a token on {self.host}: anyone who "
                    "reaches it could run code; set BEEPHOST_MCP_TOKEN"
                )
        if self.token is not None and len(self.token.get_secret_value()) < 16:
            raise ValueError("BEEPHOST_MCP_TOKEN is shorter than 16 characters")
        return self
