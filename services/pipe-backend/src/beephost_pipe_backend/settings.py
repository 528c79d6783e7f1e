"""Settings of the pipe backend, read from BEEPHOST_PIPE_BACKEND_* variables."""

from pathlib import Path

from pydantic import Field, field_validator

from beephost_core.envsettings import EnvConfigDict
from beephost_core.settings import BackendSettings
from beephost_pipe_backend.healthcheck import DEFAULT_SOCKET_PATH, ENV_PREFIX

# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 107


class Settings(BackendSettings):
    """Every knob of the pipe backend; see docs/configuration.md for the table."""

    model_config = EnvConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    socket_path: Path = Field(
        Path(DEFAULT_SOCKET_PATH),
        description="Unix socket the server listens on.",
    )
    socket_mode: int = Field(
        0o660, ge=0, le=0o777, description="Permission bits of the socket file (octal)."
    )
    metrics_port: int = Field(9464, ge=0, le=65535, description="0 disables metrics.")
    max_frame_bytes: int = Field(
        32 << 20, ge=1024, description="Longest accepted line."
    )
    max_connections: int = Field(256, ge=1, description="Concurrent connections.")
    max_inflight: int = Field(
        64, ge=1, description="Concurrent requests per connection."
    )
    max_unsent_bytes: int = Field(
        4 << 20,
        ge=65536,
        description="Reply bytes one connection may hold unsent (its client reads "
        "slowly) before the server stops reading its requests.",
    )

    @field_validator("socket_mode", mode="before")
    @classmethod
    def _octal(cls, value: object) -> object:
        # Modes are written in octal everywhere else ("0660", "0o660"); read them so.
        if isinstance(value, str):
            return int(value.removeprefix("0o"), 8)
        return value

    @field_validator("socket_path")
    @classmethod
    def _short_enough(cls, value: Path) -> Path:
        if len(str(value).encode()) > _MAX_SOCKET_PATH:
            raise ValueError(
                f"socket path longer than {_MAX_SOCKET_PATH} bytes: {value}"
            )
        return value
