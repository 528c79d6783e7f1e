"""What the server serves: the request gate, answering before FastAPI is imported.

Importing FastAPI and building its routes takes about half a second, most of a cold
start. The gate, the fast lane (``POST /api/eval`` and ``/api/exec``) and the executor
need none of it: the front starts the executor and answers them at once, while a thread
imports FastAPI and builds the app (``app.build_app``) that every other request waits
for. Once it is built, requests go through the same gate to the same app as
``app.create_app``'s.
"""

import asyncio
import concurrent.futures
import logging
import threading
import traceback
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from beephost_http_backend.disconnect import CancelOnDisconnect
from beephost_http_backend.fastlane import FastLane
from beephost_http_backend.middleware import RequestGate
from beephost_http_backend.state import BackendState, serving

if TYPE_CHECKING:
    from beephost_http_backend.app import BackendApp

logger = logging.getLogger(__name__)


class FrontApp:
    """An ASGI app: the lifespan runs the executor; requests pass the gate first."""

    def __init__(self, state: BackendState) -> None:
        self.backend = state
        self._built: concurrent.futures.Future[BackendApp] = concurrent.futures.Future()
        self._app: BackendApp | None = None
        self.gate: ASGIApp = CancelOnDisconnect(
            RequestGate(self._routed, state, FastLane(state))
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self.gate(scope, receive, send)

    def build(self) -> None:
        """Import FastAPI and build the app (``start_building`` runs it in a thread)."""
        if not self._built.set_running_or_notify_cancel():
            return
        try:
            from beephost_http_backend.app import build_app

            self._built.set_result(build_app(self.backend))
        except BaseException as exc:
            logger.exception("building the FastAPI app failed")
            self._built.set_exception(exc)

    def start_building(self) -> None:
        threading.Thread(target=self.build, name="build-app", daemon=True).start()

    def fastapi(self, timeout: float | None = None) -> "BackendApp":
        """The FastAPI app, once built (blocks until then, at most ``timeout``)."""
        return self._built.result(timeout)

    async def _routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app
        if app is None:  # only while the app is built: then it is an attribute read
            app = self._app = await asyncio.wrap_future(self._built)
        await app.call_fastapi(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        # The ASGI lifespan protocol, as Starlette's router speaks it.
        await receive()  # lifespan.startup
        # Before the executor's start: the import overlaps the worker's.
        self.start_building()
        started = False
        try:
            async with serving(self.backend):
                started = True
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown
        except BaseException:
            failed = "shutdown" if started else "startup"
            message = traceback.format_exc()
            await send({"type": f"lifespan.{failed}.failed", "message": message})
            raise
        await send({"type": "lifespan.shutdown.complete"})
