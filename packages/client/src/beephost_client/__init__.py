"""Beep Python Host client SDK: one interface over pipe, HTTP and gRPC, sync and async.

    import beephost_client

    with beephost_client.connect("unix:///tmp/beephost/pipe.sock") as client:
        client.evaluate("2 ** 100")

Everything public is listed in ``__all__``; other names may change without notice.
"""

from typing import TYPE_CHECKING

from beephost_client._async._client import (
    AsyncClient,
    AsyncExecStream,
    AsyncRemoteObject,
    AsyncSession,
)
from beephost_client._async._connect import aconnect
from beephost_client._async._files import AsyncFiles
from beephost_client._async._sugar import AsyncRemoteAttribute
from beephost_client._config import SCHEMES
from beephost_client._exceptions import (
    BadReply,
    ConnectError,
    ConnectionLost,
    ErrorReply,
    InvalidArgument,
    UsageError,
)
from beephost_client._models import (
    ExecResult,
    Output,
    OutputChunk,
    SessionDescription,
)
from beephost_client._sync._client import Client, ExecStream, RemoteObject, Session
from beephost_client._sync._connect import connect
from beephost_client._sync._files import Files
from beephost_client._timeout import Timeout
from beephost_client._transports.base import AsyncBaseTransport, BaseTransport
from beephost_client._transports.http import AsyncHTTPTransport, HTTPTransport
from beephost_client._transports.mock import MockTransport
from beephost_client._transports.pipe import AsyncPipeTransport, PipeTransport
from beephost_client.controller import AsyncControllerClient, ControllerClient
from beephost_protocol import Handle, build_models
from beephost_protocol.errors import (
    BeepHostError,
    Conflict,
    ErrorCode,
    ExecutionFailed,
    ExecutionTimeout,
    InternalError,
    Interrupted,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    SessionLost,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from beephost_protocol.files import FileInfo, WorkspaceDescription

# A client may be used from many threads, with a pydantic whose deferred model builds
# are not thread-safe (before 2.14): build the wire models now, once.
build_models()

if TYPE_CHECKING:  # imported lazily at run time: they need the [grpc] extra
    from beephost_client._transports.grpc import AsyncGRPCTransport, GRPCTransport


def __getattr__(name: str) -> object:
    # The gRPC transports need the [grpc] extra: import them only when asked for.
    if name in ("GRPCTransport", "AsyncGRPCTransport"):
        from beephost_client._transports import grpc

        return getattr(grpc, name)
    raise AttributeError(f"module 'beephost_client' has no attribute {name!r}")


__all__ = [
    "SCHEMES",
    "AsyncBaseTransport",
    "AsyncClient",
    "AsyncControllerClient",
    "AsyncExecStream",
    "AsyncFiles",
    "AsyncGRPCTransport",
    "AsyncHTTPTransport",
    "AsyncPipeTransport",
    "AsyncRemoteAttribute",
    "AsyncRemoteObject",
    "AsyncSession",
    "BadReply",
    "BaseTransport",
    "BeepHostError",
    "Client",
    "Conflict",
    "ConnectError",
    "ConnectionLost",
    "ControllerClient",
    "ErrorCode",
    "ErrorReply",
    "ExecResult",
    "ExecStream",
    "ExecutionFailed",
    "ExecutionTimeout",
    "FileInfo",
    "Files",
    "GRPCTransport",
    "HTTPTransport",
    "Handle",
    "InternalError",
    "Interrupted",
    "InvalidArgument",
    "InvalidRequest",
    "MockTransport",
    "NotFound",
    "Output",
    "OutputChunk",
    "PipeTransport",
    "QuotaExceeded",
    "RemoteObject",
    "Session",
    "SessionDescription",
    "SessionLost",
    "Timeout",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "UsageError",
    "WorkspaceDescription",
    "aconnect",
    "connect",
]
