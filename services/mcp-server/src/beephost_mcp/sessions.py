"""One sandbox per MCP session: claimed at the session's first tool call, kept while
it lives, released when it ends or idles past the timeout. Two sessions never share one."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Hashable
from typing import Self

from beephost_mcp.sandbox import Sandbox, SandboxSource

log = logging.getLogger(__name__)


class Sandboxes:
    """The live sandboxes by session key; an async context manager (releases all)."""

    def __init__(self, source: SandboxSource, idle_timeout: float) -> None:
        self.source = source
        self._idle_timeout = idle_timeout
        self._live: dict[Hashable, Sandbox] = {}
        self._claiming: dict[Hashable, asyncio.Lock] = {}
        #: Keys whose sandbox the reaper released: the next one says so.
        self._expired: set[Hashable] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._preparing: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._reaper = asyncio.create_task(self._reap())
        # The source's set-up (an environment to build, a pool to fill) starts now, so
        # the first session finds it done; the first claim waits for it otherwise.
        self._preparing = asyncio.create_task(self._prepare())
        return self

    async def _prepare(self) -> None:
        try:
            await self.source.prepare()
        except Exception as exc:  # retried by the first claim, which reports it
            log.warning("preparing the sandboxes failed (retried at a claim): %s", exc)

    async def __aexit__(self, *exc_info: object) -> None:
        for task in (self._reaper, self._preparing):
            if task is not None:
                task.cancel()
        keys = list(self._live)
        await asyncio.gather(*(self.end(key) for key in keys), return_exceptions=True)
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.source.aclose()

    def __len__(self) -> int:
        return len(self._live)

    def peek(self, key: Hashable) -> Sandbox | None:
        """The session's sandbox if it has one (no claim)."""
        return self._live.get(key)

    async def get(self, key: Hashable) -> Sandbox:
        """The session's sandbox, claimed at the first call."""
        lock = self._claiming.setdefault(key, asyncio.Lock())
        async with lock:
            sandbox = self._live.get(key)
            if sandbox is None:
                sandbox = await self.source.claim()
                self._live[key] = sandbox
                log.info("a sandbox for a session (%d live)", len(self._live))
                if key in self._expired:
                    self._expired.discard(key)
                    sandbox.notice = (
                        f"a new sandbox: the previous one was stopped after "
                        f"{self._idle_timeout:g} idle seconds, with its variables and files"
                    )
        return sandbox

    @contextlib.asynccontextmanager
    async def using(self, key: Hashable) -> AsyncIterator[Sandbox]:
        """The session's sandbox, marked busy (the reaper leaves it) for the block."""
        sandbox = await self.get(key)
        sandbox.busy += 1
        try:
            yield sandbox
        finally:
            sandbox.busy -= 1
            sandbox.last_used = time.monotonic()

    async def replace(self, key: Hashable) -> Sandbox:
        """A new sandbox for the session; the old one is released."""
        await self.end(key)
        return await self.get(key)

    async def end(self, key: Hashable) -> None:
        """Release the session's sandbox, if it has one (the session ended)."""
        self._claiming.pop(key, None)
        sandbox = self._live.pop(key, None)
        if sandbox is not None:
            await self.source.release(sandbox)

    def end_soon(self, key: Hashable) -> None:
        """``end`` in the background: for callers that may not wait (a closing
        connection's cleanup runs under a short deadline)."""
        task = asyncio.create_task(self.end(key))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reap(self) -> None:
        interval = min(self._idle_timeout / 4, 5.0)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for key, sandbox in list(self._live.items()):
                if sandbox.busy == 0 and now - sandbox.last_used > self._idle_timeout:
                    log.info(
                        "releasing a sandbox idle for %.0f s", now - sandbox.last_used
                    )
                    self._expired.add(key)
                    self.end_soon(key)
