"""Settings of the pipe backend, read from BEEPHOST_PIPE_BACKEND_* variables."""

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from beephost_core import ExecutorConfig, base_interpreter

# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 107


class Settings(BaseSettings):
    """Every knob of the pipe backend; see docs/configuration.md for the table."""

    model_config = SettingsConfigDict(
        env_prefix="BEEPHOST_PIPE_BACKEND_", extra="ignore"
    )

    socket_path: Path = Field(
        Path("/tmp/beephost/pipe.sock"),
        description="Unix socket the server listens on.",
    )
    socket_mode: int = Field(
        0o660, ge=0, le=0o777, description="Permission bits of the socket file (octal)."
    )
    token: SecretStr | None = Field(
        None, description="If set, every connection must present it in `hello`."
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address of the /metrics HTTP server."
    )
    metrics_port: int = Field(9464, ge=0, le=65535, description="0 disables metrics.")
    python: str = Field(
        default_factory=base_interpreter, description="The environment's interpreter."
    )
    environment: str = Field(
        "local", description="Environment name reported to clients."
    )
    worker_cwd: str | None = Field(None, description="Working directory of workers.")
    max_frame_bytes: int = Field(
        32 << 20, ge=1024, description="Longest accepted line."
    )
    max_connections: int = Field(256, ge=1, description="Concurrent connections.")
    max_inflight: int = Field(
        64, ge=1, description="Concurrent requests per connection."
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
    max_handles: int = Field(1000, ge=1, description="Live handles per session.")
    max_output_bytes: int = Field(
        1 << 20, ge=1, description="Captured stdout/stderr per request."
    )
    max_result_bytes: int = Field(
        16 << 20, ge=1024, description="Encoded reply size per request."
    )
    prewarm: int = Field(1, ge=0, description="Spare workers kept ready.")
    drain_timeout: float = Field(
        10.0, ge=0, description="Seconds to finish requests on SIGTERM."
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

    def executor_config(self) -> ExecutorConfig:
        return ExecutorConfig(
            python=self.python,
            environment=self.environment,
            default_timeout=self.default_timeout,
            max_timeout=self.max_timeout,
            kill_grace=self.kill_grace,
            max_sessions=self.max_sessions,
            session_ttl=self.session_ttl,
            max_handles=self.max_handles,
            max_output_bytes=self.max_output_bytes,
            max_result_bytes=self.max_result_bytes,
            prewarm=self.prewarm,
            cwd=self.worker_cwd,
        )
