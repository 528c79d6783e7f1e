"""The SDK's pipe connections with several requests in flight, on a real pipe backend.

Replies come in any order (pipe.md §7): one that comes while another is awaited is
held for its request when the caller says it will await it (``keep``), and dropped
otherwise, as a stale reply of an abandoned request is. The pipelined upload relies on
it (``PipeTransport.upload``: a few writes ahead of their replies).
"""

import time
from collections.abc import Iterator

import pytest

from beephost_client._timeout import Timeout
from beephost_client._transports._pipeio import AsyncConnection, Connection
from beephost_protocol import Execute
from beephost_protocol.models import SessionList
from tests.integration.pipe.support import PipeServerProcess

pytestmark = pytest.mark.anyio

SLOW = Execute(code="import time\ntime.sleep(1)\n'slow'")


@pytest.fixture
def conn(pipe_server: PipeServerProcess) -> Iterator[Connection]:
    connection = Connection.open(str(pipe_server.socket_path), None, Timeout())
    yield connection
    connection.close()


def test_a_reply_that_overtakes_the_awaited_one_is_held_for_its_request(
    conn: Connection,
) -> None:
    deadline = time.monotonic() + 10
    slow = conn.start(SLOW, deadline)
    listing = conn.start(SessionList(), deadline)
    # session.list is answered first (it waits for no session): held, not lost.
    assert conn.reply(slow, deadline, keep={listing})["value"] == "slow"
    assert list(conn.early) == [listing]
    assert conn.reply(listing, deadline)["sessions"] == ["default"]
    assert conn.early == {}


def test_without_keep_a_reply_of_another_request_is_dropped(conn: Connection) -> None:
    deadline = time.monotonic() + 10
    slow = conn.start(SLOW, deadline)
    conn.start(SessionList(), deadline)
    assert conn.reply(slow, deadline)["value"] == "slow"
    assert conn.early == {}, "nothing held that nobody awaits"
    assert conn.reply(conn.start(SessionList(), deadline), deadline)["sessions"]


async def test_the_asyncio_connection_holds_it_too(
    pipe_server: PipeServerProcess,
) -> None:
    conn = await AsyncConnection.open(str(pipe_server.socket_path), None, Timeout())
    try:
        deadline = time.monotonic() + 10
        slow = await conn.start(SLOW, deadline)
        listing = await conn.start(SessionList(), deadline)
        assert (await conn.reply(slow, deadline, keep={listing}))["value"] == "slow"
        assert (await conn.reply(listing, deadline))["sessions"] == ["default"]
        assert conn.early == {}
    finally:
        await conn.aclose()
