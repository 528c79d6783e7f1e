"""Cancel a request's handling when its client disconnects (docs/protocol/http.md).

ASGI servers do not cancel a handler whose client went away: its code would run on,
and keep its session busy, until its deadline. This wrapper watches the connection
once the request's body has been read; a disconnect before the response is complete
cancels the handler, and the core then interrupts the request's code (killing the
worker after the grace if the code ignores it) before the session takes its next one.
"""

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class CancelOnDisconnect:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch(receive, send, task)
        try:
            await self.app(scope, watch.receive, watch.send)
        except asyncio.CancelledError:
            if not watch.cancelled:
                raise  # the server's cancellation (shutdown), not ours
            task.uncancel()  # the client is gone: nobody to answer
        finally:
            watch.stop()


class _Watch:
    """The request's receive and send, plus a watcher started once the body is read.

    After the body, the watcher is the only reader of the server's ``receive``; the
    app's own later calls (a streaming response listens for the disconnect too) get
    the message it read.
    """

    def __init__(
        self, receive: Receive, send: Send, task: "asyncio.Task[object]"
    ) -> None:
        self._receive = receive
        self._send = send
        self._task = task
        self._next: asyncio.Task[Message] | None = None
        self.done = False  # the response is complete: a disconnect now is normal
        self.cancelled = False

    async def receive(self) -> Message:
        if self._next is not None:
            return await asyncio.shield(self._next)
        message = await self._receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            self._next = asyncio.ensure_future(self._receive())
            self._next.add_done_callback(self._on_message)
        return message

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
        await self._send(message)

    def stop(self) -> None:
        if self._next is not None and not self._next.done():
            self._next.cancel()
