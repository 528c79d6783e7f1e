"""The public surface is explicit (R8): __all__ is pinned and every name exists."""

import types

import pytest

import beephost_core
import beephost_protocol

PINNED = {
    beephost_protocol: {
        "COMMANDS",
        "DEFAULT_SESSION",
        "ERROR_CLASSES",
        "GRPC_STATUS",
        "HTTP_STATUS",
        "PROTOCOL_VERSION",
        "BeepHostError",
        "Command",
        "Conflict",
        "ErrorCode",
        "Evaluate",
        "Execute",
        "ExecutionFailed",
        "ExecutionTimeout",
        "Handle",
        "InternalError",
        "Interrupt",
        "Interrupted",
        "InvalidRequest",
        "LineDecoder",
        "LineTooLong",
        "NotFound",
        "ObjectCall",
        "ObjectCreate",
        "ObjectGetAttr",
        "ObjectList",
        "ObjectRelease",
        "ObjectSetAttr",
        "QuotaExceeded",
        "SessionClose",
        "SessionCommand",
        "SessionInfo",
        "SessionList",
        "SessionLost",
        "SessionOpen",
        "TooLarge",
        "Unauthorized",
        "Unavailable",
        "decode_value",
        "encode",
        "encode_value",
        "error_from_wire",
    },
    beephost_core: {
        "WORKER_SCRIPT",
        "CoreMetrics",
        "Executor",
        "ExecutorConfig",
        "base_interpreter",
    },
}


@pytest.mark.parametrize("module", list(PINNED), ids=lambda m: m.__name__)
def test_all_is_pinned_and_importable(module: types.ModuleType) -> None:
    assert set(module.__all__) == PINNED[module]
    for name in module.__all__:
        assert getattr(module, name) is not None
