"""What the server serves: the request gate, answering before FastAPI is imported.

Importing FastAPI and building its routes takes about half a second, most of a cold
start. The gate, the fast lane (``POST /api/eval``, ``/api/exec``, lease releases), the
probes (``GET /health`` and ``/ready``, ``probes.py``) and the executor need none of
it: the front starts the executor and answers them at once, while a thread imports
FastAPI and builds the app (``app.build_app``) that every other request waits for.
The build is not put off until a request needs it: a pool's member must be as warm
as a backend can be when it is claimed (a first session or file request would wait
for it), at the price of about 15 MiB. Once it is built, requests go through the same
gate to the same app as ``app.create_app``'s, and the server settles
(``beephost_core.memory``).
"""

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import traceback
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from beephost_core.memory import SETTLE_DELAY, settle
from beephost_http_backend import probes
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
        self._building = threading.Lock()
        self._started = False
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
        """Build the app in a thread, once (later calls do nothing)."""
        with self._building:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self.build, name="build-app", daemon=True).start()

    def fastapi(self, timeout: float | None = None) -> "BackendApp":
        """The FastAPI app, once built (blocks until then, at most ``timeout``)."""
        self.start_building()
        return self._built.result(timeout)

    async def _routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app
        if app is None:  # only while the app is built: then it is an attribute read
            if not self._built.done() and await self._probe(scope, receive, send):
                return
            app = self._app = await asyncio.wrap_future(self._built)
        await app.call_fastapi(scope, receive, send)

    async def _settle_once_built(self) -> None:
        """Settle after the build's garbage exists (not at once: the first requests)."""
        with contextlib.suppress(Exception):  # a failed build is logged by build()
            await asyncio.wrap_future(self._built)
        await asyncio.sleep(SETTLE_DELAY)
        settle()

    async def _probe(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer GET /health or /ready (the gate routes HEAD as GET); False if not one."""
        if scope["type"] != "http" or scope["method"] != "GET":
            return False
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        response = probes.answer(path, self.backend)
        if response is None:
            return False
        await response(scope, receive, send)
        return True

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        # The ASGI lifespan protocol, as Starlette's router speaks it.
        await receive()  # lifespan.startup
        started = False
        try:
            async with serving(self.backend):
                started = True
                # Once the executor has started, not before: under a container's CPU
                # quota the import only competed with the worker's start (first 1+1
                # about 100 ms later), and FastAPI is ready no later for it.
                self.start_building()
                await send({"type": "lifespan.startup.complete"})
                settling = asyncio.create_task(self._settle_once_built())
                await receive()  # lifespan.shutdown
                settling.cancel()
        except BaseException:
            failed = "shutdown" if started else "startup"
            message = traceback.format_exc()
            await send({"type": f"lifespan.{failed}.failed", "message": message})
            raise
        await send({"type": "lifespan.shutdown.complete"})
