"""Settings of the gRPC backend, read from BEEPHOST_RPC_BACKEND_* variables."""

from pydantic import Field

from beephost_core.envsettings import EnvConfigDict
from beephost_core.settings import NetworkBackendSettings
from beephost_rpc_backend.healthcheck import ENV_PREFIX


class Settings(NetworkBackendSettings):
    """Every knob of the gRPC backend; see docs/configuration.md for the table."""

    model_config = EnvConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address the gRPC server binds (0.0.0.0 or :: for every interface).",
    )
    port: int = Field(
        50051, ge=0, le=65535, description="gRPC port; 0 picks a free one."
    )
    metrics_port: int = Field(9465, ge=0, le=65535, description="0 disables metrics.")
    allow_unauthenticated: bool = Field(
        False,
        description="Allow listening on a non-loopback address without a token "
        "(anyone who reaches the port can run code).",
    )
    max_request_bytes: int = Field(
        32 << 20,
        ge=1024,
        description="Largest accepted request message (gRPC max_receive_message_length).",
    )

    def max_reply_bytes(self) -> int:
        """gRPC max_send_message_length: the core bounds replies, this is a backstop."""
        return self.max_result_bytes + 4 * self.max_output_bytes + (1 << 20)
