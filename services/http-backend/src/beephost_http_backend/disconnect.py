"""Cancel a request's handling when its client disconnects (docs/protocol/http.md).

ASGI servers do not cancel a handler whose client went away: its code would run on,
and keep its session busy, until its deadline. This wrapper watches the connection
once the request's body has been read; a disconnect before the response is complete
cancels the handler, and the core then interrupts the request's code (killing the
worker after the grace if the code ignores it) before the session takes its next one.

Watching costs a task and a pending ``receive`` per request (tens of µs, ~9% of a
``1+1`` round trip), so it starts only when the request is still running
``WATCH_DELAY`` seconds after its body: most requests finish before, and pay only a
timer. A client that left earlier is seen as soon as the watch starts (the server
keeps the disconnect), still well within the documented "about a second".
"""

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Seconds after the body: longer than a quick request, short next to "about a second".
WATCH_DELAY = 0.1


class CancelOnDisconnect:
    def __init__(self, app: ASGIApp, watch_delay: float = WATCH_DELAY) -> None:
        self.app = app
        self.watch_delay = watch_delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch(receive, send, task, self.watch_delay)
        try:
            await self.app(scope, watch.receive, watch.send)
        except asyncio.CancelledError:
            if not watch.cancelled:
                raise  # the server's cancellation (shutdown), not ours
            task.uncancel()  # the client is gone: nobody to answer
        finally:
            watch.stop()


class _Watch:
    """The request's receive and send, plus a watcher started after the body is read.

    Once started (by the timer, or by the app's own next ``receive``: a streaming
    response listens for the disconnect too), one pending read of the server's
    ``receive`` is shared: the app's later calls get the message it read.
    """

    def __init__(
        self,
        receive: Receive,
        send: Send,
        task: "asyncio.Task[object]",
        delay: float,
    ) -> None:
        self._receive = receive
        self._send = send
        self._task = task
        self._delay = delay
        self._timer: asyncio.TimerHandle | None = None
        self._next: asyncio.Task[Message] | None = None
        self._body_read = False
        self.done = False  # the response is complete: a disconnect now is normal
        self.cancelled = False

    async def receive(self) -> Message:
        if self._body_read:
            return await asyncio.shield(self._start())
        message = await self._receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            self._body_read = True
            self._timer = asyncio.get_running_loop().call_later(
                self._delay, self._start
            )
        return message

    def _start(self) -> "asyncio.Task[Message]":
        """The shared read of the server's next message, started once."""
        if self._next is None:
            self._next = asyncio.ensure_future(self._receive())
            self._next.add_done_callback(self._on_message)
        return self._next

    def _on_message(self, next_message: "asyncio.Task[Message]") -> None:
        if next_message.cancelled() or next_message.exception() is not None:
            return
        if next_message.result()["type"] == "http.disconnect" and not self.done:
            self.cancelled = True
            self._task.cancel()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get(
            "more_body", False
        ):
            self.done = True  # before sending: the server may report a disconnect next
            self._stop_timer()  # the common case: finished before the watch started
        await self._send(message)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def stop(self) -> None:
        self._stop_timer()
        if self._next is not None and not self._next.done():
            self._next.cancel()
