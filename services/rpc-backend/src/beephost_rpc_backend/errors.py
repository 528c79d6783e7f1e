"""The one gRPC error mapping: BeepHostError to status code, details and trailing metadata."""

from typing import Any, NoReturn

import grpc

from beephost_protocol import pb_codec
from beephost_protocol.errors import GRPC_STATUS, BeepHostError, ErrorCode

STATUS: dict[ErrorCode, grpc.StatusCode] = {
    code: grpc.StatusCode[name] for code, name in GRPC_STATUS.items()
}

# grpc-message shares the client's 8 KiB metadata budget with beephost-error, and is
# percent-encoded (up to 3 bytes per byte): the full message is in the error object.
MAX_DETAILS_BYTES = 256


def status_of(error: BeepHostError) -> grpc.StatusCode:
    return STATUS[error.code or ErrorCode.INTERNAL]


def details_of(error: BeepHostError) -> str:
    raw = error.message.encode("utf-8", "replace")
    if len(raw) <= MAX_DETAILS_BYTES:
        return raw.decode()
    return raw[: MAX_DETAILS_BYTES - 3].decode("utf-8", "ignore") + "..."


def trailing_metadata(error: BeepHostError) -> tuple[tuple[str, str], ...]:
    return ((pb_codec.ERROR_METADATA_KEY, pb_codec.encode_error(error)),)


async def abort(
    context: "grpc.aio.ServicerContext[Any, Any]", error: BeepHostError
) -> NoReturn:
    """End the call with the error's status; raises, as ``context.abort`` does."""
    await context.abort(status_of(error), details_of(error), trailing_metadata(error))
