"""The Executor: one entry point, ``run(command)``, over sessions and their workers."""

import asyncio
import collections
import contextlib
import functools
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal, cast, overload

from beephost_core._process import EventCallback, Sent, WorkerProcess
from beephost_core.activity import REPORT_INTERVAL, Activity
from beephost_core.config import ExecutorConfig
from beephost_core.early_worker import EarlyWorker
from beephost_core.egress_relay import EgressRelay
from beephost_core.files import FileService
from beephost_core.launch import Launch
from beephost_core.leases import LeaseOwner, Leases, check_lease
from beephost_core.metrics import CoreMetrics
from beephost_core.session_lock import SessionLock, Turn
from beephost_core.workspace import Workspace
from beephost_protocol import models
from beephost_protocol.errors import (
    BeepHostError,
    ExecutionTimeout,
    InternalError,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    SessionLost,
    Unavailable,
)
from beephost_protocol.files import FILE_COMMANDS

logger = logging.getLogger(__name__)

_LOST_MEMORY = 1024  # how many lost session ids we remember, to answer truthfully


@dataclass(eq=False)
class Session:
    id: str
    ttl: float | None  # None: never expires (the default session)
    worker: WorkerProcess | None = None
    lock: "SessionLock[_Queued, Sent]" = field(default_factory=SessionLock)
    created_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    requests: int = 0
    lost_while_idle: str | None = None  # reported once, by the next request

    def ready_worker(self) -> WorkerProcess | None:
        """Its worker if a request can go straight to it; None when one must be made
        or a loss reported first (``Executor._live_worker``)."""
        worker = self.worker
        if worker is None or not worker.alive or self.lost_while_idle is not None:
            return None
        return worker


@dataclass(frozen=True, slots=True)
class _Queued:
    """A request waiting for its session, as the hand-off would send it."""

    op: str
    params: dict[str, Any]
    deadline: float
    stream: EventCallback | None
    raw: bool


def _worker_params(command: models.Command) -> tuple[str, dict[str, Any]]:
    """The worker operation and parameters for a command that runs in a worker."""
    match command:
        case models.Evaluate():
            return "eval", {"expression": command.expression, "locals": command.locals}
        case models.Execute():
            return "exec", {"code": command.code}
        case models.ObjectCreate():
            return "object.create", {
                "target": command.target,
                "args": command.args,
                "kwargs": command.kwargs,
            }
        case models.ObjectGetAttr():
            return "object.get_attr", {"handle": command.handle, "name": command.name}
        case models.ObjectSetAttr():
            return "object.set_attr", {
                "handle": command.handle,
                "name": command.name,
                "value": command.value,
            }
        case models.ObjectCall():
            return "object.call", {
                "handle": command.handle,
                "method": command.method,
                "args": command.args,
                "kwargs": command.kwargs,
            }
        case models.ObjectRelease():
            return "object.release", {"handles": command.handles}
        case models.ObjectList():
            return "object.list", {}
        case models.SessionInfo():
            return "info", {}
    raise InvalidRequest(f"command {command.COMMAND!r} does not run in a worker")


#: The commands that run in a session's worker, by exact type: ``_dispatch`` sends
#: them there before its match (pydantic models' isinstance checks are ABC checks).
_WORKER_COMMANDS = frozenset(
    {
        models.Evaluate,
        models.Execute,
        models.ObjectCreate,
        models.ObjectGetAttr,
        models.ObjectSetAttr,
        models.ObjectCall,
        models.ObjectRelease,
        models.ObjectList,
        models.SessionInfo,
    }
)


class Executor:
    """Runs commands in per-session worker processes, within the configured limits.

    Every backend builds one Executor and calls :meth:`run` for each decoded request;
    errors come out as :class:`~beephost_protocol.errors.BeepHostError` subclasses.
    """

    def __init__(
        self,
        config: ExecutorConfig,
        metrics: CoreMetrics | None = None,
        early: EarlyWorker | None = None,
    ) -> None:
        """``early``: a worker started before ``config`` was known
        (``beephost_core.early_worker``): the default session's, if its launch is
        ``config``'s; killed otherwise."""
        self.config = config
        self._early = early
        self.metrics = metrics or CoreMetrics("local")
        self._sessions: dict[str, Session] = {}
        self._lost: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._spares: list[WorkerProcess] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._refilling = False
        self._sessions_opened = False  # spares are kept from the first session.open on
        self._closing = False
        self._reaper: asyncio.Task[None] | None = None
        self._reporter: asyncio.Task[None] | None = None
        #: Requests in flight and the end of the last: how long the backend is idle.
        self.activity = Activity(config.activity_file)
        # Handles of the default session by owner (a pipe connection, or a lease):
        # released when the owner goes away (a lease: expires), so that dead clients
        # do not fill the shared session.
        self._owned: dict[Hashable, set[str]] = {}
        self._leases = Leases(config.lease_ttl)
        self._files: FileService | None = None
        self._temporary_workspace: str | None = None
        self._starting: asyncio.Task[None] | None = None
        #: True once ``start`` has ended well: a transport that listens before (pipe)
        #: makes a request that came sooner await ``start`` first.
        self.started = False
        self._running_loop: asyncio.AbstractEventLoop | None = None
        #: The loopback port relayed to the egress proxy (config.egress_socket).
        self.egress: EgressRelay | None = None
        self.metrics.track(
            sessions=lambda: len(self._sessions),
            handles=lambda: sum(
                s.worker.handles for s in list(self._sessions.values()) if s.worker
            ),
        )

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def files(self) -> FileService:
        """The workspace's file commands (and the workspace, for streaming transports)."""
        if self._files is None:
            raise Unavailable("the server is not started")
        return self._files

    @property
    def workspace(self) -> Workspace:
        return self.files.workspace

    def _open_workspace(self) -> None:
        root = self.config.workspace
        if root is None:
            root = tempfile.mkdtemp(prefix="beephost-workspace-")
            self._temporary_workspace = root
        workspace = Workspace(root, self.config.workspace_quota)
        self._files = FileService(workspace)
        if self.config.packages and not os.path.isdir(self.config.packages):
            # A sys.path entry missing when a worker starts is never looked at again.
            os.makedirs(self.config.packages)
        self.config = self.config.in_workspace(str(workspace.root))

    def start_soon(self) -> asyncio.Task[None]:
        """Begin ``start`` as a task of the running loop (once); ``start`` awaits it.

        A server calls it before importing its framework: the default session's worker
        then boots in its own process, on another core, while the server imports (a
        cold start waited for the two one after the other).
        """
        if self._starting is None:
            self._starting = self._loop().create_task(self._start())
        return self._starting

    def _loop(self) -> asyncio.AbstractEventLoop:
        """The loop the executor runs on, looked up once: on Python 3.11 every
        ``asyncio.get_running_loop()`` is a ``getpid()`` system call."""
        if self._running_loop is None:
            self._running_loop = asyncio.get_running_loop()
        return self._running_loop

    async def start(self) -> None:
        """Open the workspace, start the default session's worker and the idle reaper
        (spares: see below), or wait for ``start_soon``'s start to end.

        Raises:
            Unavailable: The environment's interpreter cannot run a worker.
        """
        await self.start_soon()

    async def _start(self) -> None:
        self._open_workspace()
        if self.config.egress_socket is not None:
            # Before the first worker: user code's first request may go out.
            relay = EgressRelay(self.config.egress_socket, self.config.egress_port)
            try:
                await relay.start()
            except OSError as exc:
                raise Unavailable(
                    f"the egress relay cannot listen on 127.0.0.1:"
                    f"{self.config.egress_port}: {exc.strerror or exc}"
                ) from exc
            self.egress = relay
        default = Session(models.DEFAULT_SESSION, ttl=None)
        self._assign(default, await self._first_worker())
        self._sessions[default.id] = default
        # No spares yet: they are started once a client opens a session of its own,
        # so a backend only ever asked to evaluate holds one worker, not two (each is
        # ~10 MiB of its container's memory limit).
        self._reaper = asyncio.create_task(self._reap_idle_sessions())
        if self.activity.path is not None:
            self._reporter = asyncio.create_task(self._report_activity())
        self.started = True

    async def _report_activity(self) -> None:
        while True:
            self.activity.report()
            await asyncio.sleep(REPORT_INTERVAL)

    async def aclose(self) -> None:
        """Kill every worker; in-flight requests end with SessionLost."""
        self._closing = True
        # Cancel the reaper, but let spawns finish: cancelling one inside
        # create_subprocess_exec would leak a process nobody holds. A start still
        # under way (start_soon) is one, and it starts the reaper.
        if self._starting is not None:
            await asyncio.wait([self._starting], timeout=self.config.spawn_timeout)
            if self._starting.done() and not self._starting.cancelled():
                self._starting.exception()  # raised to start()'s caller, if any
        for loop in (self._reaper, self._reporter):
            if loop is not None:
                loop.cancel()
        # The workers die first: a background task waiting on one (a release queued
        # behind a long request) then ends at once, and only spawns are left to wait
        # for, each bounded by spawn_timeout.
        await self._kill_workers()
        if self._early is not None:  # a start that failed or never came
            self._early.discard()
            self._early = None
        tasks = list(self._tasks)
        _, late = (
            await asyncio.wait(tasks, timeout=self.config.spawn_timeout)
            if tasks
            else ((), ())
        )
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._kill_workers()  # what a spawn added meanwhile (a spare)
        if self.egress is not None:
            await self.egress.aclose()
        if self._files is not None:
            await self._files.aclose()
        if self._temporary_workspace is not None:
            shutil.rmtree(self._temporary_workspace, ignore_errors=True)

    async def _kill_workers(self) -> None:
        workers = [s.worker for s in self._sessions.values() if s.worker] + self._spares
        self._sessions.clear()
        self._spares.clear()
        await asyncio.gather(
            *(worker.kill() for worker in workers), return_exceptions=True
        )

    @property
    def ready(self) -> bool:
        """True while the default session has a live worker (or can get one)."""
        if self._closing:
            return False
        default = self._sessions.get(models.DEFAULT_SESSION)
        return default is not None and (default.worker is None or default.worker.alive)

    # -- the one entry point --------------------------------------------------------------

    @overload
    async def run(
        self,
        command: models.Command,
        on_event: EventCallback | None = None,
        *,
        owner: Hashable | None = None,
        lease: str | None = None,
        raw: Literal[False] = False,
    ) -> dict[str, Any]: ...

    @overload
    async def run(
        self,
        command: models.Command,
        on_event: EventCallback | None = None,
        *,
        owner: Hashable | None = None,
        lease: str | None = None,
        raw: bool,
    ) -> dict[str, Any] | bytes: ...

    async def run(
        self,
        command: models.Command,
        on_event: EventCallback | None = None,
        *,
        owner: Hashable | None = None,
        lease: str | None = None,
        raw: bool = False,
    ) -> dict[str, Any] | bytes:
        """Run one command and return its JSON-ready result.

        Args:
            command: A decoded command model.
            on_event: For ``exec`` with ``stream``: called with ("stdout"|"stderr", text)
                as output is produced, and ("display", output) for each rich output.
            owner: Who receives the result (a connection): handles it creates in the
                ``default`` session are released by :meth:`release_owned`.
            lease: The client's lease id (HTTP header, gRPC metadata): renewed by this
                request, it owns the handles the request creates in ``default``
                (instead of ``owner``); they are released when it expires or by
                ``lease.release``.
            raw: A result from a worker may come as its JSON text (bytes) as the
                worker wrote it (ASCII, compact), for a transport to forward as is.

        Raises:
            BeepHostError: One of the taxonomy's errors; anything else is wrapped as
                InternalError.
        """
        started = time.perf_counter()
        outcome = "ok"
        try:
            if lease is not None:
                self._leases.touch(check_lease(lease))
                owner = LeaseOwner(lease)
            self.activity.begin()
            try:
                if type(command) in _WORKER_COMMANDS and not self._closing:
                    # The hot path, inline: each coroutine level costs a frame per
                    # request and another resume when the worker replies.
                    session_command = cast(models.SessionCommand, command)
                    return await self._session_command(
                        session_command, on_event, owner, raw
                    )
                return await self._dispatch(command, on_event, owner)
            finally:
                self.activity.end()
        except BeepHostError as exc:
            outcome = exc.wire_code
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as exc:
            outcome = "internal"
            logger.exception("internal error running %s", command.COMMAND)
            raise InternalError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.metrics.observe(
                command.COMMAND, outcome, time.perf_counter() - started
            )

    async def _dispatch(
        self,
        command: models.Command,
        on_event: EventCallback | None,
        owner: Hashable | None,
    ) -> dict[str, Any]:
        if self._closing:
            raise Unavailable("the server is shutting down")
        if type(command) in _WORKER_COMMANDS:  # the hot path: no match to walk
            session_command = cast(models.SessionCommand, command)
            return await self._session_command(session_command, on_event, owner)
        match command:
            case models.SessionOpen():
                return await self._open_session(command)
            case models.SessionClose():
                return await self._close_session(command.session)
            case models.SessionList():
                return {"sessions": list(self._sessions)}
            case models.LeaseRenew():
                return self._renew_lease(command.lease)
            case models.LeaseRelease():
                return await self._release_lease(command.lease)
            case models.Interrupt():
                session = self._session(command.session)
                worker = session.worker
                return {"interrupted": bool(worker and worker.interrupt())}
            case _ if isinstance(command, FILE_COMMANDS):
                return await self.files.run(command, owner)
            case models.SessionCommand():
                return await self._session_command(command, on_event, owner)
        raise InvalidRequest(f"unknown command {command.COMMAND!r}")

    # -- handles of the default session, by owner --------------------------------------

    def _track_owned(
        self, command: models.SessionCommand, owner: Hashable | None
    ) -> None:
        session = self._sessions.get(models.DEFAULT_SESSION)
        worker = session.worker if session is not None else None
        if owner is not None and worker is not None and worker.created:
            self._owned.setdefault(owner, set()).update(worker.created)
        if isinstance(owner, LeaseOwner):
            # Its clock starts again when it gets the handles, however long this ran.
            self._leases.touch(owner.id)
        if isinstance(command, models.ObjectRelease):
            released = set(command.handles)
            for handles in self._owned.values():
                handles -= released

    def release_owned(self, owner: Hashable) -> None:
        """Release (in the background) the default session's handles ``owner`` received,
        and abort the uploads it left open."""
        if self._files is not None:
            self._background(self._files.release_owned(owner))
        handles = self._owned.pop(owner, None)
        if handles:
            release = models.ObjectRelease(handles=sorted(handles))
            self._background(self._release_quietly(release))

    def _renew_lease(self, lease: str) -> dict[str, Any]:
        self._leases.touch(check_lease(lease))
        held = len(self._owned.get(LeaseOwner(lease), ()))
        return {"lease": lease, "ttl": self.config.lease_ttl, "handles": held}

    async def _release_lease(self, lease: str) -> dict[str, Any]:
        self._leases.forget(check_lease(lease))
        handles = self._owned.pop(LeaseOwner(lease), None)
        released = 0
        if handles:
            release = models.ObjectRelease(handles=sorted(handles))
            result = await self._session_command(release, None)
            released = int(result.get("released", 0))
        return {"lease": lease, "released": released}

    async def _release_quietly(self, release: models.ObjectRelease) -> None:
        with contextlib.suppress(BeepHostError):
            await self.run(release)

    # -- sessions -------------------------------------------------------------------------

    def _session(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is not None:
            return session
        if session_id in self._lost:
            raise SessionLost(
                f"session {session_id!r} was lost: {self._lost[session_id]}",
                {"session": session_id, "reason": self._lost[session_id]},
            )
        raise NotFound(f"no session {session_id!r}", {"session": session_id})

    async def _open_session(self, command: models.SessionOpen) -> dict[str, Any]:
        if len(self._sessions) >= self.config.max_sessions:
            raise QuotaExceeded(
                f"{len(self._sessions)} sessions are open, the limit; close one first",
                {"limit": self.config.max_sessions},
            )
        ttl = min(command.ttl or self.config.session_ttl, self.config.max_session_ttl)
        session = Session("s-" + secrets.token_hex(8), ttl=ttl)
        self._sessions[session.id] = session  # reserve the slot before awaiting
        self._sessions_opened = True
        try:
            self._assign(session, self._take_spare() or await self._spawn())
        except BaseException:
            self._sessions.pop(session.id, None)
            raise
        return {"session": session.id, "ttl": ttl}

    async def _close_session(self, session_id: str) -> dict[str, Any]:
        if self._lost.pop(session_id, None) is not None:
            return {"closed": True}  # closing a lost session is a clean no-op
        session = self._session(session_id)
        worker, session.worker = session.worker, None
        if session.id != models.DEFAULT_SESSION:
            del self._sessions[session.id]  # closing "default" resets it instead
        else:
            self._owned.clear()  # its handles are gone: nobody owns them any more
        if worker is not None:
            await worker.kill()
        return {"closed": True}

    @overload
    async def _session_command(
        self,
        command: models.SessionCommand,
        on_event: EventCallback | None,
        owner: Hashable | None = None,
        raw: Literal[False] = False,
    ) -> dict[str, Any]: ...

    @overload
    async def _session_command(
        self,
        command: models.SessionCommand,
        on_event: EventCallback | None,
        owner: Hashable | None,
        raw: bool,
    ) -> dict[str, Any] | bytes: ...

    async def _session_command(
        self,
        command: models.SessionCommand,
        on_event: EventCallback | None,
        owner: Hashable | None = None,
        raw: bool = False,
    ) -> dict[str, Any] | bytes:
        """Run ``command`` in its session's worker; ``on_event`` gets an ``exec``'s
        streamed output, ``owner`` the handles it creates in ``default``; ``raw``: as
        :meth:`run`'s.

        One coroutine for the whole hot path (it was three: each level costs a frame
        and a resume per request)."""
        stream = (
            on_event if isinstance(command, models.Execute) and command.stream else None
        )
        op, params = _worker_params(command)
        session = self._session(command.session)
        timeout = min(
            command.timeout or self.config.default_timeout, self.config.max_timeout
        )
        deadline = self._loop().time() + timeout
        raw_result = raw and op != "info"  # info's result gets more members here
        sent: Sent | None = None
        if not session.lock.locked():
            grant = await session.lock.acquire()  # returns at once: no suspension
        else:  # only a queued request pays for a timer and a turn
            turn: Turn[_Queued, Sent] = Turn(
                _Queued(op, params, deadline, stream, raw_result)
            )
            try:
                async with asyncio.timeout_at(deadline):
                    grant = await session.lock.acquire(turn)
            except TimeoutError:
                if turn.sent is None:
                    raise ExecutionTimeout(
                        f"deadline of {timeout}s passed while the session was busy with another request",
                        {"state_lost": False},
                    ) from None
                grant = turn.grant  # handed the worker as its deadline passed: that
                # deadline stops it at once
            except asyncio.CancelledError:
                if turn.sent is not None:
                    # Handed the worker as it was cancelled: stop its code, as a
                    # cancelled request does, then pass the session on.
                    try:
                        if session.worker is not None:
                            await session.worker.abandon(
                                turn.sent, self.config.kill_grace
                            )
                    finally:
                        session.lock.release(turn.grant)
                raise
            sent = turn.sent
        try:
            if sent is not None:
                # The previous request's reply sent this one (_hand_off): its checks
                # were made there.
                worker = session.worker
                assert worker is not None
            else:
                if self._sessions.get(session.id) is not session:
                    # Retired while this request queued (its worker was killed at a
                    # deadline, or it was closed): never run on a fresh, empty worker.
                    self._session(session.id)  # lost or closed: raises why
                    raise SessionLost(
                        f"session {session.id!r} was reset while this request waited; "
                        "its state is lost",
                        {"session": session.id, "state_lost": True},
                    )
                # _live_worker is a coroutine: awaited only when the worker is not ready
                worker = session.ready_worker() or await self._live_worker(session)
                session.requests += 1
            result = await worker.request(
                op,
                params,
                deadline=deadline,
                grace=self.config.kill_grace,
                on_event=stream,
                raw=raw_result,
                sent=sent,  # then on_event was given when it was sent
            )
        except BeepHostError as exc:
            if isinstance(exc, SessionLost):
                exc.data["session"] = session.id
            if session.worker is not None and not session.worker.alive:
                await self._retire_worker(
                    session, str(exc.data.get("reason", exc.message))
                )
            raise
        finally:
            session.last_used = time.monotonic()
            session.lock.release(grant)  # unless its reply handed the session on
        if isinstance(result, dict) and op == "info":
            result.update(self._describe(session))
        if command.session == models.DEFAULT_SESSION:
            self._track_owned(command, owner)
        return result

    def _hand_off(
        self, session: Session, worker: WorkerProcess, reply: dict[str, Any]
    ) -> None:
        """On each reply of the session's worker: if the request ended cleanly and
        another waits, send that one at once and hand it the session
        (SessionLock.hand_off); the replied request's coroutine then leaves the lock."""
        if (
            not session.lock.waiting
            or self._closing
            or session.worker is not worker
            or self._sessions.get(session.id) is not session
            or not worker.may_hand_off(reply)
        ):
            return
        session.lock.hand_off(lambda turn: self._send_queued(session, worker, turn))

    def _send_queued(
        self, session: Session, worker: WorkerProcess, turn: "Turn[_Queued, Sent]"
    ) -> Sent | None:
        queued = turn.request
        if queued is None or queued.stream is not None:
            return None  # a streamed exec takes the usual path: its events need it
        try:
            sent = worker.send(
                queued.op, queued.params, queued.deadline, raw=queued.raw
            )
        except (ConnectionError, BeepHostError):
            return None
        session.requests += 1
        return sent

    async def _live_worker(self, session: Session) -> WorkerProcess:
        ready = session.ready_worker()
        if ready is not None:
            return ready
        if session.lost_while_idle is not None:
            reason, session.lost_while_idle = session.lost_while_idle, None
            raise SessionLost(
                f"the session's worker died while idle ({reason}); its state is lost",
                {"session": session.id, "reason": reason},
            )
        worker = session.worker
        if worker is not None:  # died while idle: say so once, then start afresh
            reason = await worker.exit_reason()
            await self._retire_worker(session, reason)
            raise SessionLost(
                f"the session's worker died while idle ({reason}); its state is lost",
                {"session": session.id, "reason": reason},
            )
        if self._closing:  # a request queued before aclose: no worker it would leak
            raise Unavailable("the server is shutting down")
        return self._assign(session, self._take_spare() or await self._spawn())

    def _assign(self, session: Session, worker: WorkerProcess) -> WorkerProcess:
        session.worker = worker
        worker.hold_state()
        worker.on_reply(functools.partial(self._hand_off, session, worker))
        if session.id == models.DEFAULT_SESSION:
            # Readiness depends on the default worker: replace it as soon as it dies.
            worker.on_exit(
                lambda dead: self._background(self._replace_idle_default(dead))
            )
        return worker

    async def _replace_idle_default(self, dead: WorkerProcess) -> None:
        session = self._sessions.get(models.DEFAULT_SESSION)
        if session is None or session.worker is not dead:
            return
        async with session.lock:  # a request in flight reports the loss itself
            if session.worker is not dead or self._closing:
                return
            reason = await dead.exit_reason()
            await self._retire_worker(session, reason)
            session.lost_while_idle = reason
            self._assign(session, self._take_spare() or await self._spawn())

    async def _retire_worker(self, session: Session, reason: str) -> None:
        self.metrics.worker_restarts.labels("lost").inc()
        worker, session.worker = session.worker, None
        if worker is not None:
            await worker.kill()  # reaps it and whatever it started, closes the channel
        if session.id == models.DEFAULT_SESSION:
            self._owned.clear()  # its handles died with the worker
            return  # the default session always exists; its next request gets a fresh worker
        self._sessions.pop(session.id, None)
        self._remember_lost(session.id, reason)

    def _remember_lost(self, session_id: str, reason: str) -> None:
        self._lost[session_id] = reason
        while len(self._lost) > _LOST_MEMORY:
            self._lost.popitem(last=False)

    def _describe(self, session: Session) -> dict[str, Any]:
        return {
            "session": session.id,
            "environment": self.config.environment,
            "requests": session.requests,
            "created_at": session.created_at,
            "idle_seconds": round(time.monotonic() - session.last_used, 3),
            "ttl": session.ttl,
        }

    # -- workers --------------------------------------------------------------------------

    async def _first_worker(self) -> WorkerProcess:
        """The early worker if it was started as this config says, else a new one."""
        early, self._early = self._early, None
        if early is None:
            return await self._spawn()
        if early.launch != Launch.of(self.config):
            logger.info("the worker started early does not fit the settings: replaced")
            early.discard()
            return await self._spawn()
        started = time.perf_counter()
        try:
            worker = await WorkerProcess.adopt(early, self.config)
        except Unavailable as exc:
            logger.warning(
                "the worker started early failed (%s): replaced", exc.message
            )
            return await self._spawn()
        self.metrics.worker_spawn.observe(time.perf_counter() - started)
        logger.info(
            "the default session's worker (pid %d) was started early", worker.pid
        )
        return worker

    async def _spawn(self) -> WorkerProcess:
        started = time.perf_counter()
        worker = await WorkerProcess.spawn(self.config)
        self.metrics.worker_spawn.observe(time.perf_counter() - started)
        return worker

    def _take_spare(self) -> WorkerProcess | None:
        while self._spares:
            worker = self._spares.pop()
            if worker.alive:
                self._background(self._refill_spares())
                return worker
        self._background(self._refill_spares())
        return None

    def _spare_target(self) -> int:
        return self.config.prewarm if self._sessions_opened else 0

    async def _refill_spares(self) -> None:
        if self._refilling:
            return  # one refill loop at a time, or spares overshoot the target
        self._refilling = True
        try:
            while len(self._spares) < self._spare_target() and not self._closing:
                self._spares.append(await self._spawn())
        except Unavailable:
            logger.warning("could not prewarm a worker", exc_info=True)
        finally:
            self._refilling = False

    async def _reap_idle_sessions(self) -> None:
        ttls = (self.config.session_ttl, self.config.lease_ttl)
        interval = max(0.05, min(5.0, *(ttl / 4 for ttl in ttls)))
        while True:
            await asyncio.sleep(interval)
            if self._files is not None:
                await self._files.expire_idle()
            for lease in self._leases.expired():
                # The id is not logged: whoever knows it can renew or end the lease.
                held = len(self._owned.get(LeaseOwner(lease), ()))
                if held:
                    logger.info("a lease expired: releasing its %d handles", held)
                self.release_owned(LeaseOwner(lease))
            now = time.monotonic()
            for session in list(self._sessions.values()):
                expired = (
                    session.ttl is not None and now - session.last_used > session.ttl
                )
                if expired and not session.lock.locked():
                    logger.info(
                        "session %s expired after %ss idle", session.id, session.ttl
                    )
                    # Lost before its worker is killed: a request that comes while
                    # the kill runs learns why, instead of "no session".
                    worker, session.worker = session.worker, None
                    self._sessions.pop(session.id, None)
                    self._remember_lost(
                        session.id, f"expired after {session.ttl}s idle"
                    )
                    if worker is not None:
                        await worker.kill()

    def _background(self, coro: Any) -> None:
        if self._closing:
            coro.close()
            return
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
