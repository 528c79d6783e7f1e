"""Handles a pipe connection received in ``default`` die with it (issue 11, item 5).

A client that dies without releasing its objects must not fill the shared session: the
server releases them when the connection closes. Against a real pipe backend, with a
raw socket client (the SDK releases its objects when closed properly).
"""

import json
import socket
from typing import Any

import anyio
import pytest

import beephost_client as bc
from tests.integration.contract.servers import Backend

pytestmark = pytest.mark.anyio


def _request(sock: socket.socket, reader: Any, frame: dict[str, Any]) -> dict[str, Any]:
    sock.sendall(json.dumps(frame).encode() + b"\n")
    reply: dict[str, Any] = json.loads(reader.readline())
    return reply


def _leave_handles_behind(path: str) -> list[str]:
    """Create objects in `default` over a raw connection, then drop it unreleased."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        reader = sock.makefile("rb")
        reply = _request(
            sock,
            reader,
            {"id": 1, "type": "eval", "params": {"expression": "[object(), object()]"}},
        )
        kept = _request(
            sock,
            reader,
            {"id": 2, "type": "eval", "params": {"expression": "object()"}},
        )
        released = kept["result"]["value"]["$handle"]["id"]
        _request(
            sock,
            reader,
            {"id": 3, "type": "object.release", "params": {"handles": [released]}},
        )
        reader.close()
    return [value["$handle"]["id"] for value in reply["result"]["value"]]


async def test_a_closed_connection_releases_its_default_handles(
    backend_urls: dict[str, Backend],
) -> None:
    backend = backend_urls["pipe"]
    path = backend.url.removeprefix("unix://")
    async with bc.aconnect(backend.url, token=backend.token) as other:
        mine = await other.evaluate("object()")  # a live connection's handle stays
        left = await anyio.to_thread.run_sync(_leave_handles_behind, path)
        with anyio.fail_after(15):
            while {h.id for h in await other.objects()} & set(left):  # noqa: ASYNC110 - polls the server
                await anyio.sleep(0.02)
        assert mine.handle.id in {h.id for h in await other.objects()}
