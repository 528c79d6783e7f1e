"""The same failure gives the same error on every transport, however long its parts.

Real pipe, HTTP and gRPC backends (the transport contract's servers) and the async SDK:
each case runs in a fresh session on each transport, and the error's class,
``remote_type``, message and traceback must be equal everywhere, the type never cut
and every frame of the user's code kept (docs/protocol/errors.md, "Long errors").
"""

import re
from typing import Any

import pytest

import beephost_client as bc
from beephost_protocol.errors import MAX_MESSAGE_BYTES, MAX_TRACEBACK_BYTES
from tests.integration.contract.servers import TRANSPORTS, Backend

pytestmark = pytest.mark.anyio


_CHAIN = "\n".join(f"def f{i}():\n    f{i + 1}()" for i in range(60))
_LONG_TYPE = "E" * 300

CASES = {
    "long message": "raise ValueError('m' * 20000)",
    "sixty user frames": f"{_CHAIN}\ndef f60():\n    raise KeyError('deep')\nf0()",
    "library frames between user frames": (
        "import copy\n"
        "class Bomb:\n"
        "    def __deepcopy__(self, memo):\n"
        "        raise RuntimeError('no copies')\n"
        "value = [Bomb()]\n"
        "for _ in range(80):\n"
        "    value = [value]\n"
        "copy.deepcopy(value)"
    ),
    "long type name": f"raise type({_LONG_TYPE!r}, (Exception,), {{}})('x' * 9000)",
    "output then a long message": "print('o' * 50000)\nraise ValueError('é' * 9000)",
    "non-ASCII frames": "def ünïcode():\n    raise ValueError('ü' * 3000)\nünïcode()",
}


def _normal(traceback: str) -> str:
    # Each server numbers the snippets it compiled; the fresh sessions make them equal,
    # but the number is no part of the comparison.
    return re.sub(r"<beephost-\d+>", "<beephost-N>", traceback)


def _user_frames(traceback: str) -> list[str]:
    lines = traceback.splitlines()
    return [
        f"{line}\n{lines[i + 1] if i + 1 < len(lines) else ''}"
        for i, line in enumerate(lines)
        if line.startswith('  File "<beephost-')
    ]


async def _failure(backend: Backend, code: str) -> bc.ExecutionFailed:
    async with bc.aconnect(backend.url, token=backend.token) as client:
        session = await client.open_session()
        try:
            with pytest.raises(bc.ExecutionFailed) as caught:
                await session.execute(code)
        finally:
            await session.aclose()
    return caught.value


@pytest.mark.parametrize("case", list(CASES))
async def test_a_failure_reads_the_same_on_every_transport(
    backend_urls: dict[str, Backend], case: str
) -> None:
    errors = {
        kind: await _failure(backend_urls[kind], CASES[case]) for kind in TRANSPORTS
    }
    seen: dict[str, Any] = {
        kind: (
            type(error),
            error.remote_type,
            error.message,
            _normal(error.remote_traceback),
        )
        for kind, error in errors.items()
    }
    assert seen["http"] == seen["pipe"], case
    assert seen["grpc"] == seen["pipe"], case
    error = errors["pipe"]
    assert error.remote_type, case
    assert len(error.message.encode()) <= MAX_MESSAGE_BYTES * 2
    assert len(error.remote_traceback) <= MAX_TRACEBACK_BYTES
    if case == "long type name":
        assert error.remote_type == _LONG_TYPE
    frames = _user_frames(_normal(error.remote_traceback))
    if case == "sixty user frames":
        assert len(frames) == 62, frames  # <module>, f0 ... f60
        assert error.remote_traceback.rstrip().endswith("KeyError: 'deep'")
    if case == "library frames between user frames":
        assert len(frames) == 2, frames  # <module> and __deepcopy__
        assert "library frames cut" in error.remote_traceback
        assert error.remote_traceback.rstrip().endswith("RuntimeError: no copies")
    if case == "long message":
        assert "characters cut" in error.message
        assert error.message.startswith("ValueError: mmm")
        assert error.message.endswith("mmm")
