"""One worker process: spawn it, talk to it over a socketpair, interrupt it, kill it.

A worker and everything it starts share one process group (the worker's pid): killing
the session kills the group, and the group's orphans are reaped here when the server is
their reaper (PID 1 of a container). Deaths are explained from the container's cgroup
(beephost_core.cgroup): an OOM kill says "out of memory", and a session whose processes
exhausted the container's process limit is killed as a whole, like the OOM killer would.
"""

import asyncio
import collections
import contextlib
import ctypes
import functools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from beephost_core.cgroup import ContainerLimits
from beephost_core.config import ExecutorConfig
from beephost_core.deadlines import DeadlineTimer
from beephost_core.early_worker import EarlyWorker
from beephost_core.launch import Launch
from beephost_protocol.errors import (
    BeepHostError,
    ExecutionTimeout,
    InternalError,
    SessionLost,
    Unavailable,
    error_from_wire,
)
from beephost_protocol.jsoncodec import compact_encoder, whole_decoder

logger = logging.getLogger(__name__)

_STDERR_TAIL = 4096
_REAP_TIMEOUT = 2.0  # seconds a killed group gets to die before we stop waiting
_LAST_WORDS = 0.1  # seconds a dead worker's channel may still deliver a reply
_PR_SET_DUMPABLE = 4
#: Workers are the OOM killer's first choice, over the server (0); of the workers, a
#: spare (no state yet) goes before a session's (an unprivileged process may set any
#: score down to where it started, 0). The kernel adds a worker's share of the limit, in
#: thousandths, to its score: a bomb holding over a fifth of it still goes first.
SPARE_OOM_SCORE_ADJ = 1000
SESSION_OOM_SCORE_ADJ = 800

#: Called with ("stdout"|"stderr", text) or ("display", one output dict).
EventCallback = Callable[[str, Any], None]
T = TypeVar("T")


class _Channel(asyncio.Protocol):
    """The server's end of the worker socket: JSON lines straight into the waiting future.

    A Protocol rather than streams: each reply resolves the request's future from
    ``data_received`` without an extra task hop, which is most of the pipe's latency.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Kept: on Python 3.11 every asyncio.get_running_loop() is a getpid() system
        # call, and the hot path asked four times per request.
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.expect_id = 0  # only replies to this request id resolve the waiter
        # Waiting for the worker's hello (id 0) from the start: it may arrive before
        # the spawner gets to ask for it.
        self.waiter: asyncio.Future[dict[str, Any]] | None = self.loop.create_future()
        self.on_event: EventCallback | None = None
        #: A reply to ``expect_id`` that came after its waiter was done (cancelled).
        self.early_reply: dict[str, Any] | None = None
        #: The waiter gets the result's JSON text as it came (see _split_reply).
        self.raw = False
        self.broken: InternalError | None = None
        self.lost = False
        self.on_lost: Callable[[], None] | None = None
        #: Called with every awaited reply, in the callback that received it.
        self.on_reply: Callable[[dict[str, Any]], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if not self.buffer and data.find(b"\n") == len(data) - 1:
            self._on_line(data)  # the common case: exactly one whole line
            return
        self.buffer += data
        while (end := self.buffer.find(b"\n")) >= 0 and self.broken is None:
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 1]
            self._on_line(line)
        if len(self.buffer) > self.limit:
            self._break(f"a worker frame exceeded the {self.limit}-byte channel limit")

    def _on_line(self, line: bytes) -> None:
        try:
            message = (self.raw and _split_reply(line)) or _decode_line(line.decode())
        except ValueError:  # UnicodeDecodeError is one
            self._break("the worker sent a malformed frame")
            return
        if not isinstance(message, dict) or message.get("id") != self.expect_id:
            return  # a late reply to an earlier, expired request
        if "event" in message:
            if self.on_event is not None:
                event, data = str(message["event"]), message.get("data")
                if event == "display":
                    self.on_event(event, data if isinstance(data, dict) else {})
                else:
                    self.on_event(event, str(data or ""))
        elif self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(message)
            if self.on_reply is not None:
                self.on_reply(message)  # after set_result: its waiter wakes first
        else:
            # Its waiter was cancelled or timed out a moment ago (the client's
            # disconnect and this reply came in the same poll of the loop), and the
            # side that settles the request expects the reply again. Dropped, it would
            # interrupt an idle worker, wait out the grace and kill it: state lost.
            self.early_reply = message

    def _break(self, reason: str) -> None:
        # The channel is corrupt: nothing after this can be trusted.
        self.broken = InternalError(
            f"{reason}; it was killed and the session's state is lost",
            {"state_lost": True},
        )
        self.buffer.clear()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.broken)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.on_lost is not None:
            self.on_lost()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(
                self.broken or ConnectionResetError("worker gone")
            )

    def expect(
        self, request_id: int, on_event: EventCallback | None, raw: bool = False
    ) -> "asyncio.Future[dict[str, Any]]":
        if self.broken is not None or self.lost:
            raise self.broken or ConnectionResetError("worker gone")
        early, self.early_reply = self.early_reply, None
        self.expect_id = request_id
        self.on_event = on_event
        self.raw = raw
        self.waiter = self.loop.create_future()
        if early is not None and early.get("id") == request_id:
            self.waiter.set_result(early)  # it came while nobody waited
        return self.waiter


@dataclass(frozen=True, slots=True)
class Sent:
    """An operation written to a worker, whose reply is awaited."""

    request_id: int
    future: "asyncio.Future[dict[str, Any]]"


async def _to_the_end(work: "Coroutine[Any, Any, T]") -> T:
    """Await ``work`` to its end even if the caller is cancelled meanwhile.

    A cancellation that arrives meanwhile is raised once ``work`` is done (the caller
    still holds the session, which must not be freed while its worker is busy), unless
    ``work`` failed: its error (a kill that lost the session) says more, and the
    executor retires the worker on it.
    """
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done() and task.cancelled():
                raise
            cancelled = True
    if cancelled and task.exception() is None:
        raise asyncio.CancelledError
    return task.result()


#: Where a reply's result starts: the worker writes it last, after ``id``, ``handles``
#: and ``created`` (numbers and handle ids). A quote inside a JSON string is escaped,
#: so these bytes are a member's key wherever they occur.
_RESULT_KEY = b',"result":'
#: The member ``_split_reply`` puts the result's JSON text in (bytes).
RAW_RESULT = "raw_result"


def _split_reply(line: bytes) -> dict[str, Any] | None:
    """A result reply's members with its result as JSON text, undecoded (under
    ``RAW_RESULT``), or None when ``line`` is not one (``_decode_line`` then reads it).

    The head before the result decodes on its own only if the key is the reply's own
    (a ``"result"`` key further in leaves an object open), and holds ``handles`` only
    if the worker wrote the result last.
    """
    cut = line.find(_RESULT_KEY)
    end = len(line) - 1 if line.endswith(b"\n") else len(line)
    if cut < 0 or line[end - 1 : end] != b"}":
        return None
    try:
        head = _decode_line(line[:cut].decode() + "}")
    except ValueError:
        return None
    if not isinstance(head, dict) or "handles" not in head or "error" in head:
        return None
    head[RAW_RESULT] = line[cut + len(_RESULT_KEY) : end - 1]
    return head


_encode_message = compact_encoder(ensure_ascii=True, allow_nan=True)
# Built once (json.loads looks for the bytes' encoding on every call). The worker
# writes UTF-8 (ASCII, in fact: its encoder escapes everything else).
_decode_line = whole_decoder(json.JSONDecoder())


@functools.cache
def container_limits() -> ContainerLimits:
    """This process's cgroup counters and limits, opened on first use."""
    return ContainerLimits()


@functools.cache
def protect_server() -> bool:
    """Make this process, the server, undumpable before any user code runs.

    User code runs under the server's uid. While the server is dumpable a worker can
    read ``/proc/<server>/environ`` (the token it was started with), its memory
    (``/proc/<server>/mem``) or ptrace it; undumpable, all of that needs root's
    privileges. Workers are unaffected: exec makes a process dumpable again. Called once
    per process (Linux only); returns whether it took effect.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        done = bool(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        done = False
    if not done:
        logger.warning("could not make the server undumpable: user code may read it")
    return done


def _set_oom_score_adj(pid: int, score: int) -> None:
    """Where the OOM killer ranks a worker (higher: sooner); best effort."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/oom_score_adj").write_text(str(score))


def process_group(pgid: int, proc: Path = Path("/proc")) -> list[int]:
    """Pids of the processes in group ``pgid`` (zombies included), from ``proc``."""
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rfind(b")") + 2 :].split()  # state ppid pgrp ...
        if len(fields) > 2 and fields[2] == str(pgid).encode():
            members.append(int(entry.name))
    return members


def _reap_orphans(pgid: int) -> bool:
    """Reap the zombies of group ``pgid`` that are our children; True if the group is gone.

    Only orphans are ours to reap: call it once the worker itself (the group's leader,
    reaped by asyncio) is gone.
    """
    with contextlib.suppress(ChildProcessError):
        while os.waitid(os.P_PGID, pgid, os.WEXITED | os.WNOHANG) is not None:
            pass
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return True  # not ours to wait for
    return False


class _Child(Protocol):
    """What WorkerProcess uses of its process: asyncio's Process has it all."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    @property
    def stderr(self) -> asyncio.StreamReader | None: ...
    def kill(self) -> None: ...
    async def wait(self) -> int: ...


class _EarlyProcess:
    """An early worker's process (started before the loop, with ``subprocess``), as a
    :class:`_Child`: its exit is polled, since no child watcher knows it."""

    def __init__(self, early: EarlyWorker, stderr: asyncio.StreamReader) -> None:
        self._popen = early.popen
        self.stderr = stderr

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def kill(self) -> None:
        self._popen.kill()

    async def wait(self) -> int:
        # As asyncio's Process.wait: the exit, then the end of its stderr.
        while (code := self._popen.poll()) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        while not self.stderr.at_eof():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return code


def _pipe_reader(fd: int) -> asyncio.StreamReader:
    """A StreamReader of the pipe ``fd``, which it owns: closed at its end.

    Not ``loop.connect_read_pipe``: uvloop's closes the descriptor twice (libuv's close,
    then the file object's: uvloop issue 763), and the second close may close another
    one that took its number meanwhile.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            reader.feed_data(data)
            return
        loop.remove_reader(fd)
        os.close(fd)
        reader.feed_eof()

    loop.add_reader(fd, readable)
    return reader


class WorkerProcess:
    """A live worker. Callers serialise requests; one runs at a time."""

    def __init__(self, process: "_Child", channel: _Channel) -> None:
        self._process = process
        self._channel = channel
        self._next_id = 0
        self._stderr_tail: collections.deque[bytes] = collections.deque()
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        self._deadlines = DeadlineTimer(channel.loop)
        self._pidfd: int | None = None
        self._watch_exit()
        self.busy = False
        self.handles = 0
        self.created: list[str] = []  # handle ids the last request created
        self.killed_by_us = False
        #: Why it ended, when known more precisely than its exit status:
        #: "out_of_memory" or "process_limit" (set by exit_reason and request).
        self.reason_code: str | None = None
        self._oom_kills = container_limits().oom_kills()  # the count before our time
        self._refused_seen = container_limits().pids_refused() or 0

    @property
    def pid(self) -> int:
        return self._process.pid

    def hold_state(self) -> None:
        """Mark this worker as a session's: under memory pressure the kernel kills a
        spare before it (``SESSION_OOM_SCORE_ADJ``). Once, when a session takes it."""
        _set_oom_score_adj(self.pid, SESSION_OOM_SCORE_ADJ)

    def on_exit(self, callback: Callable[["WorkerProcess"], None]) -> None:
        """Call ``callback`` when the worker goes away by itself (not by kill())."""

        def lost() -> None:
            if not self.killed_by_us:
                callback(self)

        self._channel.on_lost = lost

    def on_reply(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call ``callback`` with every reply a request awaited, in the loop callback
        that received it: before the request's coroutine resumes."""
        self._channel.on_reply = callback

    @property
    def alive(self) -> bool:
        return self._process.returncode is None and not self._channel.lost

    @classmethod
    async def spawn(cls, config: ExecutorConfig) -> "WorkerProcess":
        """Start a worker under ``config.python`` and wait for it to announce itself.

        Raises:
            Unavailable: The interpreter is missing or the worker did not start in time.
        """
        protect_server()
        launch = Launch.of(config)
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = await asyncio.create_subprocess_exec(
                *launch.command(child.fileno(), json.dumps(config.worker_settings())),
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=launch.environment,
                cwd=launch.cwd,
                start_new_session=True,  # its own process group, killed as a whole
            )
        except OSError as exc:
            parent.close()
            raise Unavailable(f"cannot start worker {config.python!r}: {exc}") from exc
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        return await cls._announced(process, parent, config)

    @classmethod
    async def adopt(cls, early: EarlyWorker, config: ExecutorConfig) -> "WorkerProcess":
        """Serve with ``early``, a worker started before the loop for ``config``'s
        launch: send it its settings and wait for it to announce itself.

        Raises:
            Unavailable: It died, or did not announce itself in time.
        """
        protect_server()
        stderr = _pipe_reader(early.take_stderr())
        parent = early.take_socket()
        # One line, as the worker reads it (json.dumps writes no newline). If it died,
        # no announcement comes, and _announced says why.
        with contextlib.suppress(OSError):
            parent.sendall(json.dumps(config.worker_settings()).encode() + b"\n")
        return await cls._announced(_EarlyProcess(early, stderr), parent, config)

    @classmethod
    async def _announced(
        cls, process: "_Child", parent: socket.socket, config: ExecutorConfig
    ) -> "WorkerProcess":
        """The worker ``process`` talking over ``parent``, once it said it is ready."""
        _set_oom_score_adj(process.pid, SPARE_OOM_SCORE_ADJ)
        limit = config.max_result_bytes + 4 * config.max_output_bytes + (1 << 20)
        loop = asyncio.get_running_loop()
        _, channel = await loop.create_unix_connection(
            lambda: _Channel(limit), sock=parent
        )
        worker = cls(process, channel)
        ready = channel.waiter
        assert ready is not None
        try:
            async with asyncio.timeout(config.spawn_timeout):
                hello = await ready
            if not hello.get("result", {}).get("ready"):
                raise Unavailable("worker announced itself wrongly")
        except TimeoutError:
            await worker.kill()
            raise Unavailable(
                f"worker did not start within {config.spawn_timeout}s"
            ) from None
        except (ConnectionError, InternalError):
            reason = await worker.exit_reason()
            await worker.kill()
            raise Unavailable(f"worker failed to start: {reason}") from None
        except BaseException:
            await worker.kill()
            raise
        return worker

    async def request(
        self,
        op: str,
        params: dict[str, Any],
        *,
        deadline: float,
        grace: float,
        on_event: EventCallback | None = None,
        raw: bool = False,
        sent: "Sent | None" = None,
    ) -> dict[str, Any] | bytes:
        """Send one operation and wait for its reply until ``deadline`` (loop time).

        With ``raw``, a result may come back as its JSON text (bytes) as the worker
        wrote it, for a transport to forward without decoding and encoding it again.
        ``sent``: the operation was sent already (``send``) and only its reply is
        awaited.

        At the deadline the worker gets SIGINT; if no reply arrives within ``grace`` it
        is killed and the timeout says the state was lost. If the container's process
        limit refused a fork meanwhile and this worker's group holds half of that limit
        or more, the session is killed (see :meth:`_check_process_limit`).

        Raises:
            BeepHostError: The worker's error, a timeout, or SessionLost if it died.
        """
        # Once it ends, or fails with one of our errors, see whether its session
        # exhausted the container's process limit (the coroutine that checks runs only
        # when a fork was refused).
        try:
            reply = await self._exchange(
                sent, op, params, on_event, deadline, grace, raw
            )
        except BeepHostError as exc:
            if self.alive and self._fork_refused():
                await self._check_process_limit(exc)
            raise
        if self._fork_refused():
            await self._check_process_limit(None)
        return reply

    def send(
        self,
        op: str,
        params: dict[str, Any],
        deadline: float,
        on_event: EventCallback | None = None,
        raw: bool = False,
    ) -> "Sent":
        """Write one operation to the idle worker and watch its deadline; ``request``
        with ``sent=`` awaits its reply. Callable from a loop callback.

        Raises:
            ConnectionError: The worker is gone.
            InternalError: Its channel broke.
        """
        # The count before this request, give or take the second before it: an OOM
        # kill in that second that killed no worker would be blamed for a SIGKILL
        # this request's worker gets from elsewhere. A fresh look at every death
        # (_sigkill_reason) keeps the count current.
        self._oom_kills = container_limits().recent_oom_kills()
        self._next_id += 1
        request_id = self._next_id
        message = {
            "id": request_id,
            "op": op,
            "params": params,
            "stream": on_event is not None,
        }
        future = self._channel.expect(request_id, on_event, raw)
        assert self._channel.transport is not None
        self._channel.transport.write(_encode_message(message).encode() + b"\n")
        self.busy = True
        self._deadlines.watch(deadline, future)
        return Sent(request_id, future)

    async def abandon(self, sent: Sent, grace: float) -> None:
        """Stop a request sent with ``send`` whose caller was cancelled before it
        awaited the reply: as a cancelled ``request`` does."""
        try:
            await _to_the_end(self._settle(sent.request_id, grace))
        finally:
            self._deadlines.unwatch(sent.future)
            if self._next_id == sent.request_id:
                self.busy = False

    def may_hand_off(self, reply: dict[str, Any]) -> bool:
        """Whether the next request may be sent at once after ``reply``: it succeeded,
        the worker lives and no fork was refused meanwhile (the checks that ``request``
        runs after a reply would find nothing to do)."""
        if "error" in reply or not self.alive:
            return False
        # A look, not _fork_refused: the refusal stays for request's own check.
        refused = container_limits().pids_refused()
        return refused is None or refused <= self._refused_seen

    async def _exchange(
        self,
        sent: "Sent | None",
        op: str,
        params: dict[str, Any],
        on_event: EventCallback | None,
        deadline: float,
        grace: float,
        raw: bool,
    ) -> dict[str, Any] | bytes:
        request_id = -1
        try:
            if sent is None:
                sent = self.send(op, params, deadline, on_event, raw)
            request_id, future = sent.request_id, sent.future
            try:
                reply = await future
            except TimeoutError:
                # Past the deadline the interrupt and kill run to their end even if
                # the caller is cancelled meanwhile: the worker is never left running.
                reply = await _to_the_end(self._expire(request_id, grace))
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    # The reply came in the same turn as the cancellation: the request
                    # is over, and waiting for a second reply would kill the worker.
                    raise
                # The client went away or cancelled: stop its code now rather than let
                # it hold the session until its deadline.
                await _to_the_end(self._settle(request_id, grace))
                raise
            finally:
                self._deadlines.unwatch(future)
        except ConnectionError as exc:
            raise await self._lost() from exc
        except InternalError:
            await self.kill()
            raise
        finally:
            if self._next_id == request_id:  # else the next one was handed the worker
                self.busy = False
        self.handles = int(reply.get("handles", self.handles))
        self.created = [str(h) for h in reply.get("created", ())]
        if "error" in reply:
            raise error_from_wire(reply["error"])
        text: bytes | None = reply.get(RAW_RESULT)
        if text is not None:
            return text if raw else _decode_line(text.decode())
        result: dict[str, Any] = reply["result"]
        return result

    async def _expire(self, request_id: int, grace: float) -> dict[str, Any]:
        future = self._channel.expect(request_id, None)
        if not future.done():  # else its reply raced the deadline: nothing to stop
            self.interrupt()
        try:
            async with asyncio.timeout(grace):
                reply = await future
        except TimeoutError:
            await self.kill()
            raise ExecutionTimeout(
                f"deadline exceeded; the worker ignored the interrupt for {grace}s and was "
                "killed: the session's state was lost",
                {"state_lost": True},
            ) from None
        except ConnectionError:
            lost = await self._lost()
            raise ExecutionTimeout(
                f"deadline exceeded and the worker died: {lost.message}",
                {"state_lost": True},
            ) from lost
        if "error" in reply:  # normally the KeyboardInterrupt reply
            output = reply["error"].get("data") or {}
            kept = {
                k: v for k, v in output.items() if k.startswith(("stdout", "stderr"))
            }
            raise ExecutionTimeout(
                "deadline exceeded; the code was interrupted and the session's state is kept",
                {"state_lost": False, **kept},
            )
        return reply  # a reply that raced the deadline still counts as a success

    async def _settle(self, request_id: int, grace: float) -> None:
        """Interrupt a cancelled request and wait for the worker to be idle again.

        The same path as a deadline: SIGINT, then a kill if no reply comes within
        ``grace`` (the session's state is then lost, and its next request says so).
        """
        if not self.alive:
            return
        try:
            future = self._channel.expect(request_id, None)
            if future.done():  # its reply raced the cancellation: nothing to stop
                return
            self.interrupt()
            async with asyncio.timeout(grace):
                await future
        except TimeoutError:
            await self.kill()
            raise SessionLost(
                f"the request was cancelled; its code ignored the interrupt for {grace}s "
                "and was killed: the session's state was lost",
                {"state_lost": True},
            ) from None
        except InternalError:
            await self.kill()  # a corrupt channel: as in _exchange
        except ConnectionError:
            pass  # it died: the session's next request reports it lost

    def _fork_refused(self) -> bool:
        """Whether the container's process limit refused a fork since this worker last
        looked: one read per request, against the count it saw last (a refusal between
        two requests is looked into after the next; the check blames a group only by
        its size)."""
        refused = container_limits().pids_refused()
        if refused is None or refused <= self._refused_seen:
            return False
        self._refused_seen = refused
        return True

    async def _check_process_limit(self, cause: BaseException | None) -> None:
        """Kill the session if its processes exhausted the container's process limit.

        Forks beyond the limit fail everywhere in the container: the server's threads,
        new workers, every other session. Called when that happened (``_fork_refused``):
        if this worker's process group holds at least half of the limit, the group is
        the culprit (a fork bomb): it is killed, as the OOM killer would a memory hog.

        Raises:
            SessionLost: With ``reason_code`` "process_limit".
        """
        limit = container_limits().pids_limit()
        members = len(process_group(self.pid))
        if limit is None or members < max(2, limit // 2):
            return
        await self.kill()
        self.reason_code = "process_limit"
        reason = (
            f"process limit (the session's code started {members - 1} processes; "
            f"the container's limit is {limit})"
        )
        raise SessionLost(
            f"the session's worker was killed ({reason}); its state is lost",
            {
                "exit_code": self._process.returncode,
                "reason": reason,
                "reason_code": self.reason_code,
            },
        ) from cause

    def interrupt(self) -> bool:
        """Raise KeyboardInterrupt in the running user code; False if nothing runs."""
        if not self.busy or not self.alive or self._channel.transport is None:
            return False
        # The frame goes first: it tells the worker which request the signal is for.
        self._channel.transport.write(b'{"interrupt":%d}\n' % self._next_id)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)
        return True

    async def kill(self) -> None:
        """Kill the worker and everything it started, then reap them.

        The group is killed even when the worker is gone already: what it forked
        outlives it otherwise (a group's id is never reused while it has members).
        """
        self.killed_by_us = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        await self.close()
        await self._reap_group()

    async def _reap_group(self) -> None:
        """Wait (bounded) until the killed group is gone, reaping its orphans.

        When the server is PID 1 of its container, the group's orphans become its
        children: unreaped, their zombies would hold the container's pids for good.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _REAP_TIMEOUT
        while not _reap_orphans(self.pid):
            if loop.time() > deadline:
                logger.warning(
                    "process group %d still has members %.0fs after SIGKILL",
                    self.pid,
                    _REAP_TIMEOUT,
                )
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)  # a fork that raced the first kill
            await asyncio.sleep(0.01)

    def _watch_exit(self) -> None:
        """Close the channel when the worker exits, even while it is still open.

        What the worker forked holds the channel (and its stderr) too: without this, a
        worker that dies while they live is noticed only at the request's deadline.
        Needs a pidfd (Linux >= 5.3); elsewhere the channel's end alone tells.
        """
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is None:
            return
        try:
            self._pidfd = pidfd_open(self.pid)
        except OSError:
            return
        loop = asyncio.get_running_loop()
        loop.add_reader(self._pidfd, self._on_exit)

    def _on_exit(self) -> None:
        self._unwatch()
        # A reply the worker sent before it exited still arrives first.
        asyncio.get_running_loop().call_later(_LAST_WORDS, self._drop_channel)

    def _drop_channel(self) -> None:
        if self._channel.transport is not None:
            self._channel.transport.close()  # -> connection_lost: the session is lost

    def _unwatch(self) -> None:
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    async def close(self) -> None:
        """Close the channel and reap the worker (bounded: what it started may escape
        its group and keep its stderr open)."""
        if self._channel.transport is not None:
            self._channel.transport.close()
        self._unwatch()
        self._deadlines.close()
        try:
            async with asyncio.timeout(_REAP_TIMEOUT):
                await self._process.wait()  # also waits for its stderr to close
        except TimeoutError:
            logger.warning("worker %d: its stderr outlives it", self.pid)
            self._stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task

    async def _exited(self) -> None:
        """Wait until the worker's exit is known (its returncode; not its pipes).

        ``Process.wait()`` also waits for its stderr to close, which whatever it forked
        may hold open; asyncio has no event for the exit alone.
        """
        while self._process.returncode is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    async def exit_reason(self) -> str:
        """Why the worker ended: exit status or signal, plus its last stderr lines."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._exited()
        code = self._process.returncode
        if code is None:
            reason = "worker stopped answering"
        elif code == -signal.SIGKILL and not self.killed_by_us:
            reason = self._sigkill_reason()
        elif code < 0:
            reason = f"worker killed by {signal.Signals(-code).name}"
        else:
            reason = f"worker exited with status {code}"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                await self._stderr_task
        tail = b"".join(self._stderr_tail).decode("utf-8", "replace").strip()
        return f"{reason}: {tail[-800:]}" if tail else reason

    def _sigkill_reason(self) -> str:
        """A SIGKILL we did not send: the OOM killer's, if the cgroup counted a kill."""
        limits = container_limits()
        before, after = self._oom_kills, limits.oom_kills()
        if before is None or after is None:
            return "worker killed by SIGKILL (out of memory?)"
        if after <= before:
            return "worker killed by SIGKILL"
        self.reason_code = "out_of_memory"
        limit = limits.memory_limit()
        if limit is None:
            return "out of memory (the container's memory limit)"
        return f"out of memory (the container's memory limit, {limit >> 20} MiB)"

    async def _lost(self) -> SessionLost:
        reason = await self.exit_reason()
        code = self._process.returncode
        data: dict[str, Any] = {"exit_code": code, "reason": reason}
        if self.reason_code is not None:
            data["reason_code"] = self.reason_code
        return SessionLost(
            f"the session's worker died ({reason}); its state is lost", data
        )

    async def _drain_stderr(self) -> None:
        # Kept bounded: C-level output (faulthandler, crashes) is diagnostics, not data.
        stream = self._process.stderr
        assert stream is not None
        size = 0
        while chunk := await stream.read(4096):
            self._stderr_tail.append(chunk)
            size += len(chunk)
            while size > _STDERR_TAIL and len(self._stderr_tail) > 1:
                size -= len(self._stderr_tail.popleft())


def monotonic_deadline(timeout: float) -> float:
    """A deadline on the running loop's clock."""
    return asyncio.get_running_loop().time() + timeout


def now() -> float:
    return time.time()
