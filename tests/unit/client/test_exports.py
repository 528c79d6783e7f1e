"""The public surface is explicit (R8): __all__ is pinned and every name exists."""

import beephost_client

PINNED = {
    "AsyncFiles",
    "Files",
    "FileInfo",
    "WorkspaceDescription",
    "SCHEMES",
    "AsyncBaseTransport",
    "AsyncClient",
    "AsyncControllerClient",
    "AsyncExecStream",
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
    "ConnectError",
    "Conflict",
    "ConnectionLost",
    "ControllerClient",
    "ErrorCode",
    "ErrorReply",
    "ExecResult",
    "ExecStream",
    "ExecutionFailed",
    "ExecutionTimeout",
    "GRPCTransport",
    "HTTPTransport",
    "Handle",
    "InternalError",
    "InvalidArgument",
    "Interrupted",
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
    "aconnect",
    "connect",
}


def test_all_is_pinned() -> None:
    assert set(beephost_client.__all__) == PINNED
    assert len(beephost_client.__all__) == len(PINNED)


def test_every_name_resolves() -> None:
    for name in beephost_client.__all__:
        assert getattr(beephost_client, name) is not None


def test_errors_are_the_protocols_own_classes() -> None:
    import beephost_protocol

    for name in (
        "BeepHostError",
        "Conflict",
        "ExecutionFailed",
        "Unavailable",
        "Unauthorized",
    ):
        assert getattr(beephost_client, name) is getattr(beephost_protocol, name)
    assert issubclass(beephost_client.ConnectError, beephost_client.Unavailable)
    assert issubclass(beephost_client.ConnectionLost, beephost_client.Unavailable)


def test_public_api_is_documented() -> None:
    for name in beephost_client.__all__:
        obj = getattr(beephost_client, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__doc__, name
