"""Settings of the HTTP backend, read from BEEPHOST_HTTP_BACKEND_* variables."""

from pydantic import Field, field_validator

from beephost_core.envsettings import EnvConfigDict
from beephost_core.settings import NetworkBackendSettings
from beephost_http_backend.healthcheck import ENV_PREFIX


class Settings(NetworkBackendSettings):
    """Every knob of the HTTP backend; the shared ones come from BackendSettings."""

    model_config = EnvConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    host: str = Field("127.0.0.1", description="Address the server listens on.")
    port: int = Field(5678, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    max_request_bytes: int = Field(
        32 << 20, ge=1024, description="Largest accepted request body."
    )
    public_docs: bool = Field(
        False,
        description="Serve /docs and /openapi.json without the token (they need it "
        "by default when a token is set).",
    )
    swagger_ui_url: str | None = Field(
        None,
        description="Base URL of swagger-ui-dist assets (swagger-ui-bundle.js, "
        "swagger-ui.css) for /docs; unset: /docs is a self-contained page.",
    )
    allow_unauthenticated: bool = Field(
        False,
        description="Allow listening on a non-loopback address without a token "
        "(anyone who reaches the port can run code).",
    )
    keep_alive: float = Field(
        30.0, gt=0, description="Seconds an idle keep-alive connection stays open."
    )

    @field_validator("swagger_ui_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value
