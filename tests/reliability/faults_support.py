"""Clients that keep sending requests while something breaks, and a watcher of what the
controller says about a backend meanwhile.

Each client keeps ONE client object (sync ``connect`` or async ``aconnect``) for its
whole life: after a crash it must recover by itself (the SDK reconnects lazily) at
the same URL. Every failure is kept with its type, so a test can require that each
one was a typed SDK exception.
"""

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import beephost_client
from beephost_client import Timeout
from beephost_client.controller import Backend, ControllerClient
from tests.e2e.controller_process import ControllerProcess

#: Short limits: a request that hangs across a crash shows up as a timeout, not a stall.
CLIENT_TIMEOUT = Timeout(request=10.0, connect=3.0, grace=2.0)
#: Code that is still running when a kill lands.
IN_FLIGHT = "__import__('time').sleep(0.03) or n + 1"


class WrongAnswer(AssertionError):
    """A request succeeded with the wrong result."""


@dataclass
class ClientLog:
    """What one client saw: when it last succeeded, and every failure."""

    name: str
    successes: int = 0
    last_success: float = 0.0
    errors: list[tuple[float, BaseException]] = field(default_factory=list)


class Traffic:
    """``sync_clients`` threads and ``async_clients`` asyncio tasks sending requests
    to one backend until :meth:`stop`: an evaluate that sleeps a little, then a
    session (open, execute, evaluate, close), over and over."""

    def __init__(
        self, backend: Backend, *, sync_clients: int = 2, async_clients: int = 1
    ) -> None:
        assert backend.endpoint is not None
        self.url = backend.endpoint
        self.token = backend.token
        self.logs = [ClientLog(f"sync-{i}") for i in range(sync_clients)] + [
            ClientLog(f"async-{i}") for i in range(async_clients)
        ]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._sync_client, args=(log,), name=log.name)
            for log in self.logs[:sync_clients]
        ]
        if async_clients:
            self._threads.append(
                threading.Thread(
                    target=self._async_clients,
                    args=(self.logs[sync_clients:],),
                    name="faults-async",
                )
            )

    def __enter__(self) -> "Traffic":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
            assert not thread.is_alive(), f"{thread.name} is stuck"

    # -- what the clients saw ----------------------------------------------------------

    def errors_since(self, since: float) -> list[BaseException]:
        with self._lock:
            return [e for log in self.logs for t, e in log.errors if t >= since]

    def wait_all_succeed(self, since: float, timeout: float = 45.0) -> float:
        """Block until every client succeeded after ``since``; the seconds it took."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                late = [log.name for log in self.logs if log.last_success <= since]
            if not late:
                return time.monotonic() - since
            assert time.monotonic() < deadline, (
                f"clients {late} did not recover within {timeout:g} s; errors: "
                f"{self.errors_since(since)[-5:]!r}"
            )
            time.sleep(0.05)

    def _ok(self, log: ClientLog) -> None:
        with self._lock:
            log.successes += 1
            log.last_success = time.monotonic()

    def _failed(self, log: ClientLog, exc: BaseException) -> None:
        with self._lock:
            log.errors.append((time.monotonic(), exc))

    # -- the clients ---------------------------------------------------------------------

    def _sync_client(self, log: ClientLog) -> None:
        try:
            client = beephost_client.connect(
                self.url, token=self.token, timeout=CLIENT_TIMEOUT
            )
        except Exception as exc:
            self._failed(log, exc)
            return
        with client:
            n = 0
            while not self._stop.is_set():
                n += 1
                try:
                    value = client.evaluate(IN_FLIGHT, locals={"n": n})
                    if value != n + 1:
                        raise WrongAnswer(f"evaluate gave {value!r}")
                    self._ok(log)
                    with client.session() as session:
                        session.execute(f"state = {n}")
                        if session.evaluate("state") != n:
                            raise WrongAnswer("the session lost its state")
                    self._ok(log)
                except Exception as exc:
                    self._failed(log, exc)
                    time.sleep(0.05)

    def _async_clients(self, logs: list[ClientLog]) -> None:
        async def one(log: ClientLog) -> None:
            async with beephost_client.aconnect(
                self.url, token=self.token, timeout=CLIENT_TIMEOUT
            ) as client:
                n = 0
                while not self._stop.is_set():
                    n += 1
                    try:
                        value = await client.evaluate(IN_FLIGHT, locals={"n": n})
                        if value != n + 1:
                            raise WrongAnswer(f"evaluate gave {value!r}")
                        self._ok(log)
                        async with client.session() as session:
                            await session.execute(f"state = {n}")
                            if await session.evaluate("state") != n:
                                raise WrongAnswer("the session lost its state")
                        self._ok(log)
                    except Exception as exc:
                        self._failed(log, exc)
                        await asyncio.sleep(0.05)

        async def main() -> None:
            results = await asyncio.gather(
                *(one(log) for log in logs), return_exceptions=True
            )
            for log, result in zip(logs, results, strict=True):
                if isinstance(result, BaseException):
                    self._failed(log, result)

        asyncio.run(main())


def error_types(errors: list[BaseException]) -> Counter[str]:
    return Counter(type(e).__name__ for e in errors)


class StatusWatcher:
    """Polls one backend's status through the controller; keeps every change."""

    def __init__(
        self, controller: ControllerProcess, backend_id: str, interval: float = 0.05
    ) -> None:
        self.controller = controller
        self.backend_id = backend_id
        self.interval = interval
        self.seen: list[tuple[str, str | None, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="status-watcher")

    def __enter__(self) -> "StatusWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _poll(self) -> None:
        with self.controller.client(timeout=5.0) as api:  # its own: not shared
            while not self._stop.is_set():
                self._look(api)
                self._stop.wait(self.interval)

    def _look(self, api: ControllerClient) -> None:
        try:
            now = api.backend(self.backend_id)
        except Exception as exc:  # the controller may be down: that is seen too
            entry: tuple[str, str | None, int] = ("unreachable", type(exc).__name__, -1)
        else:
            entry = (now.status, now.reason, now.restarts)
        if not self.seen or self.seen[-1] != entry:
            self.seen.append(entry)

    def statuses(self) -> list[str]:
        return [f"{s}({r})" if r else s for s, r, _ in self.seen]
