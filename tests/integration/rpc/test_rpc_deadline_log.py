"""A client whose deadline expires costs the server no ERROR log line: its call is
cancelled, its code interrupted, and the server goes on serving (real in-process server)."""

from __future__ import annotations  # the stubs' async types exist only in .pyi

import gc
import logging

import anyio
import grpc
import pytest

from beephost_pb.exec.v1 import exec_pb2 as pb
from tests.integration.rpc.support import StartBackend

pytestmark = pytest.mark.anyio
STUBBORN = "import time\nwhile True:\n    try:\n        time.sleep(1)\n    except KeyboardInterrupt:\n        pass"
SLOW = "import time\ntime.sleep(3)\n'late'"


async def test_an_expired_client_deadline_logs_no_error(
    start_backend: StartBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = await start_backend()
    stub = backend.stub()
    for call in (
        lambda: stub.Evaluate(
            pb.EvaluateRequest(expression="__import__('time').sleep(3)"), timeout=0.3
        ),
        lambda: stub.Execute(pb.ExecuteRequest(code=SLOW), timeout=0.3),
        lambda: stub.Execute(
            pb.ExecuteRequest(code=SLOW),
            timeout=0.3,
            metadata=[("beephost-timeout", "1")],
        ),
        lambda: stub.Execute(
            pb.ExecuteRequest(code=STUBBORN),
            timeout=0.3,
            metadata=[("beephost-timeout", "0.5")],
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call()
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    for metadata in ((), (("beephost-timeout", "1"),)):
        stream = stub.ExecuteStream(
            pb.ExecuteRequest(code=SLOW), timeout=0.3, metadata=metadata
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stream:
                pass
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await anyio.sleep(3)  # every abandoned call's own deadline and grace have passed
    # The server still answers, on the session the expired calls used.
    reply = await stub.Evaluate(pb.EvaluateRequest(expression="6 * 7"), timeout=15)
    assert reply.value_json == "42"
    gc.collect()  # an unretrieved task exception is logged when it is collected
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
