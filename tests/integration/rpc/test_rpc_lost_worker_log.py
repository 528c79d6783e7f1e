"""A worker that dies, or is killed at a deadline, is one WARNING line naming the
session and the peer, instead of the usual INFO "failed" line (real in-process server)."""

from __future__ import annotations  # the stubs' async types exist only in .pyi

import logging

import grpc
import pytest

from beephost_pb.exec.v1 import exec_pb2 as pb
from tests.integration.rpc.support import TOKEN, StartBackend

pytestmark = pytest.mark.anyio
T = 20.0
STUBBORN = (
    "import time\nwhile True:\n    try:\n        time.sleep(1)\n"
    "    except KeyboardInterrupt:\n        pass"
)


async def test_lost_and_killed_workers_are_logged_once(
    start_backend: StartBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    backend = await start_backend(kill_grace=0.3)
    stub = backend.stub()
    session = (await stub.OpenSession(pb.OpenSessionRequest(), timeout=T)).session
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Execute(
            pb.ExecuteRequest(session=session, code="import os\nos._exit(3)"), timeout=T
        )
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Execute(
            pb.ExecuteRequest(code=STUBBORN),
            timeout=T,
            metadata=[("beephost-timeout", "0.3")],
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    [lost] = [m for m in warnings if "lost its worker" in m]
    [deadline] = [m for m in warnings if "at the deadline" in m]
    assert f"session {session}" in lost
    assert "session default" in deadline
    for line in (lost, deadline):
        assert "from peer ipv4:127.0.0.1:" in line


async def test_a_refused_token_is_one_warning_with_the_peer_and_no_token(
    start_backend: StartBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    backend = await start_backend(token=TOKEN)
    wrong = "wrong-token-for-the-log-987"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await backend.stub().Evaluate(
            pb.EvaluateRequest(expression="1"),
            timeout=T,
            metadata=[("authorization", f"Bearer {wrong}")],
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    lines = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].levelno == logging.WARNING
    assert "from peer ipv4:127.0.0.1:" in lines[0].getMessage()
    assert all(
        wrong not in r.getMessage() and TOKEN not in r.getMessage()
        for r in caplog.records
    )
