"""The server's end of the worker socket: a reply that comes while nobody waits for it.

A cancelled request's waiter is done (cancelled) before the side that settles it asks
for the reply again; when the client's disconnect and the worker's reply arrive in the
same poll of the loop, the reply lands in between. It must still count: dropped, the
settling side would interrupt an idle worker and kill it at the grace (state lost).
"""

import asyncio

from beephost_core._process import _Channel

REPLY = b'{"id":3,"handles":0,"created":[],"result":{"value":2}}'


async def test_a_reply_after_its_waiter_was_cancelled_answers_the_next_expect() -> None:
    channel = _Channel(limit=1 << 20)
    first = channel.expect(3, None)
    first.cancel()  # the request was cancelled: its task is about to settle it
    channel.data_received(REPLY + b"\n")
    again = channel.expect(3, None)
    assert again.done()
    assert again.result()["result"] == {"value": 2}


async def test_an_early_reply_answers_only_its_own_request() -> None:
    channel = _Channel(limit=1 << 20)
    first = channel.expect(3, None)
    first.cancel()
    channel.data_received(REPLY + b"\n")
    other = channel.expect(4, None)  # a later request: the stale reply is not its own
    assert not other.done()
    channel.data_received(b'{"id":4,"handles":0,"created":[],"result":{"value":5}}\n')
    assert (await asyncio.wait_for(other, 1))["result"] == {"value": 5}


async def test_a_reply_to_a_waiting_request_is_not_kept_for_later() -> None:
    channel = _Channel(limit=1 << 20)
    waiting = channel.expect(3, None)
    channel.data_received(REPLY + b"\n")
    assert waiting.result()["result"] == {"value": 2}
    assert channel.early_reply is None
