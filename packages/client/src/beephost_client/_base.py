"""Everything the sync and async clients share, without I/O.

Building commands, encoding arguments and decoding results (remote objects become
proxies), the retry policy, and the bookkeeping of remote objects: which proxies are
alive, and which were garbage-collected and must be released by the next call. The
sync and async clients (``_sync/_client.py``, ``_async/_client.py``) only add the I/O.
"""

import collections
import functools
import math
import threading
import weakref
from collections.abc import Callable
from typing import Any, ClassVar, ParamSpec, TypeVar

from pydantic import ValidationError

from beephost_client._exceptions import (
    BadReply,
    ConnectError,
    ConnectionLost,
    InvalidArgument,
    UsageError,
)
from beephost_client._models import (
    ExecResult,
    SessionDescription,
    output_from,
    parse,
    session_description,
)
from beephost_client._timeout import Timeout, as_timeout
from beephost_protocol import (
    DEFAULT_SESSION,
    Command,
    Handle,
    decode_value,
    encode_value,
)
from beephost_protocol import models as wire
from beephost_protocol.errors import (
    BeepHostError,
    ExecutionTimeout,
    Unavailable,
    validation_summary,
)

# Commands whose repetition cannot change the outcome: after a connection broke with
# the request possibly delivered, only these are sent again (once). eval, exec,
# object.create, object.call, object.set_attr, session.open, session.close and
# interrupt may have run, or half run, and are never repeated.
IDEMPOTENT = frozenset(
    {"object.get_attr", "object.release", "object.list", "session.info", "session.list"}
)
MAX_ATTEMPTS = 2


def should_retry(command: Command, error: BeepHostError, attempt: int) -> bool:
    """Whether to send ``command`` again after ``error`` on attempt ``attempt`` (0-based).

    A request that was never sent (:class:`ConnectError`) is always safe to send again;
    one whose connection broke afterwards (:class:`ConnectionLost`) only if it is
    idempotent. Errors the server answered with are never retried here.
    """
    if attempt + 1 >= MAX_ATTEMPTS:
        return False
    if isinstance(error, ConnectError):
        return True
    return isinstance(error, ConnectionLost) and command.COMMAND in IDEMPOTENT


# Leases (docs/protocol/http.md, "Leases"): while a client holds objects in `default`,
# it renews its lease three times per TTL, so that one lost renewal is no loss.
RENEWALS_PER_TTL = 3
MIN_RENEWAL_INTERVAL = 0.05
# After a renewal failed for a reason that may pass (the server restarts, say).
RENEWAL_RETRY = 1.0
_TRANSIENT = (ConnectError, ConnectionLost, Unavailable, ExecutionTimeout)


def renewal_interval(result: Any) -> float:
    """Seconds until the next renewal, from a ``lease.renew`` result.

    Raises:
        BadReply: The result is not a ``LeaseRenewed``.
    """
    ttl = parse(wire.LeaseRenewed, result).ttl
    return max(MIN_RENEWAL_INTERVAL, ttl / RENEWALS_PER_TTL)


def renewal_failed(error: BeepHostError, interval: float | None) -> float | None:
    """When to try again after a failed renewal; None: stop (the server has no leases)."""
    if isinstance(error, _TRANSIENT):
        return min(interval or RENEWAL_RETRY, RENEWAL_RETRY)
    return None


_SCALARS = (str, int, bool, type(None))
_SCALARS_AND_FLOAT = (*_SCALARS, float)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _arguments(build: Callable[_P, _R]) -> Callable[_P, _R]:
    """A command builder whose bad arguments raise InvalidArgument, not the raw error.

    pydantic's ValidationError (a value nested too deeply, a wrong type), the encoder's
    TypeError (a value that cannot travel) and RecursionError (a value that contains
    itself) become one documented class, chained to the original.
    """

    @functools.wraps(build)
    def checked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return build(*args, **kwargs)
        except BeepHostError:
            raise
        except ValidationError as exc:
            problems = validation_summary(exc.errors(include_url=False), "value")
            raise InvalidArgument(f"invalid argument: {problems}") from exc
        except (ValueError, TypeError) as exc:
            raise InvalidArgument(f"invalid argument: {exc}") from exc
        except RecursionError as exc:
            raise InvalidArgument(
                "invalid argument: a value that contains itself cannot travel by value"
            ) from exc

    return checked


def _reply(decode: Callable[_P, _R]) -> Callable[_P, _R]:
    """A reply decoder whose failures (a reply not in the protocol's shape) raise
    BadReply, chained to the KeyError, ValueError or TypeError underneath."""

    @functools.wraps(decode)
    def checked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return decode(*args, **kwargs)
        except BeepHostError:
            raise
        except (
            KeyError,
            ValueError,
            TypeError,
            AttributeError,
            ArithmeticError,
        ) as exc:
            raise BadReply(
                f"the server's reply is not in the protocol's shape: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    return checked


class ProxyBase:
    """State every remote-object proxy carries; the client fills it in."""

    __slots__ = ("__weakref__", "_client", "_finalizer", "_handle", "_released", "_sid")

    _client: "BaseClient"
    _sid: str
    _handle: Handle
    _released: bool
    _finalizer: weakref.finalize | None  # type: ignore[type-arg]  # generic only in stubs

    def _init_proxy(self, client: "BaseClient", sid: str, handle: Handle) -> None:
        object.__setattr__(self, "_client", client)
        object.__setattr__(self, "_sid", sid)
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_released", False)
        object.__setattr__(self, "_finalizer", None)


class BaseClient:
    """Sans-I/O core of :class:`Client` and :class:`AsyncClient`."""

    _proxy_type: ClassVar[type[ProxyBase]]

    def __init__(self, timeout: Timeout | float) -> None:
        self._timeout = as_timeout(timeout)
        self._lock = threading.Lock()
        self._proxies: weakref.WeakValueDictionary[tuple[str, str], ProxyBase] = (
            weakref.WeakValueDictionary()
        )
        # Handles whose proxies were garbage-collected. Finalizers only append here
        # (thread-safe, no lock, no I/O: they may run in any thread, inside any
        # call); the next request sends the releases in one batch per session.
        self._garbage: collections.deque[tuple[str, str]] = collections.deque()
        self._closed = False

    @property
    def timeout(self) -> Timeout:
        """The client's default time limits."""
        return self._timeout

    # -- deadlines ---------------------------------------------------------------------

    def _deadline(self, timeout: float | None, default: float | None) -> float:
        value = timeout if timeout is not None else default
        if value is None:
            return self._timeout.request
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise InvalidArgument(f"timeout must be a finite number > 0: {value!r}")
        return float(value)

    def _wait(self, deadline: float) -> float:
        return self._timeout.wait(deadline)

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("the client is closed")

    # -- commands ----------------------------------------------------------------------

    @_arguments
    def _evaluate(
        self,
        sid: str,
        expression: str,
        local_names: Any,
        deadline: float,
    ) -> wire.Evaluate:
        encoded = {}
        if local_names:
            encoded = {str(k): self._encode(v, sid) for k, v in local_names.items()}
        return wire.Evaluate(
            expression=expression, locals=encoded, session=sid, timeout=deadline
        )

    @_arguments
    def _execute(
        self, sid: str, code: str, deadline: float, *, stream: bool
    ) -> wire.Execute:
        return wire.Execute(code=code, session=sid, timeout=deadline, stream=stream)

    @_arguments
    def _create(
        self,
        sid: str,
        target: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        deadline: float,
    ) -> wire.ObjectCreate:
        return wire.ObjectCreate(
            target=target,
            **self._encode_arguments(args, kwargs, sid),
            session=sid,
            timeout=deadline,
        )

    @_arguments
    def _get_attr(
        self, proxy: ProxyBase, name: str, deadline: float
    ) -> wire.ObjectGetAttr:
        return wire.ObjectGetAttr(
            handle=self._live_handle(proxy),
            name=name,
            session=proxy._sid,
            timeout=deadline,
        )

    @_arguments
    def _set_attr(
        self, proxy: ProxyBase, name: str, value: Any, deadline: float
    ) -> wire.ObjectSetAttr:
        return wire.ObjectSetAttr(
            handle=self._live_handle(proxy),
            name=name,
            value=self._encode(value, proxy._sid),
            session=proxy._sid,
            timeout=deadline,
        )

    @_arguments
    def _call(
        self,
        proxy: ProxyBase,
        method: str | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        deadline: float,
    ) -> wire.ObjectCall:
        sid = proxy._sid
        return wire.ObjectCall(
            handle=self._live_handle(proxy),
            method=method,
            **self._encode_arguments(args, kwargs, sid),
            session=sid,
            timeout=deadline,
        )

    @_arguments
    def _release(
        self, sid: str, handles: list[str], deadline: float
    ) -> wire.ObjectRelease:
        return wire.ObjectRelease(handles=handles, session=sid, timeout=deadline)

    @_arguments
    def _list_objects(self, sid: str, deadline: float) -> wire.ObjectList:
        return wire.ObjectList(session=sid, timeout=deadline)

    @_arguments
    def _info(self, sid: str, deadline: float) -> wire.SessionInfo:
        return wire.SessionInfo(session=sid, timeout=deadline)

    @staticmethod
    @_arguments
    def _interrupt(sid: str) -> wire.Interrupt:
        return wire.Interrupt(session=sid)

    @staticmethod
    @_arguments
    def _open_session(ttl: float | None) -> wire.SessionOpen:
        return wire.SessionOpen(ttl=ttl)

    @staticmethod
    @_arguments
    def _close_session(sid: str) -> wire.SessionClose:
        return wire.SessionClose(session=sid)

    @staticmethod
    def _list_sessions() -> wire.SessionList:
        return wire.SessionList()

    @staticmethod
    def _renew_lease(lease: str) -> wire.LeaseRenew:
        return wire.LeaseRenew(lease=lease)

    @staticmethod
    def _release_lease(lease: str) -> wire.LeaseRelease:
        return wire.LeaseRelease(lease=lease)

    # -- values ------------------------------------------------------------------------

    def _encode(self, value: Any, sid: str) -> Any:
        """Python value to wire value; proxies become their handles (same session)."""
        if isinstance(value, _SCALARS) and type(value) is not int:
            return value
        return encode_value(self._unwrap(value, sid))  # ints too: huge ones are tagged

    def _encode_arguments(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], sid: str
    ) -> dict[str, Any]:
        """The ``args`` and ``kwargs`` fields of object.create and object.call."""
        return {
            "args": [self._encode(a, sid) for a in args],
            "kwargs": {k: self._encode(v, sid) for k, v in kwargs.items()},
        }

    def _unwrap(self, value: Any, sid: str) -> Any:
        if isinstance(value, ProxyBase):
            if value._sid != sid:
                raise InvalidArgument(
                    f"{value!r} lives in session {value._sid!r}, not {sid!r}: "
                    "remote objects cannot cross sessions"
                )
            return Handle(self._live_handle(value))
        if isinstance(value, list):
            return [self._unwrap(item, sid) for item in value]
        if isinstance(value, tuple):
            return tuple(self._unwrap(item, sid) for item in value)
        if isinstance(value, dict):
            return {
                self._unwrap(k, sid): self._unwrap(v, sid) for k, v in value.items()
            }
        if isinstance(value, set | frozenset):
            items = (self._unwrap(item, sid) for item in value)
            return frozenset(items) if isinstance(value, frozenset) else set(items)
        return value

    @_reply
    def _decode(self, raw: Any, sid: str) -> Any:
        """Wire value to Python; handles become proxies bound to this client."""
        if isinstance(raw, _SCALARS_AND_FLOAT):
            return raw
        return self._wrap(decode_value(raw), sid)

    def _wrap(self, value: Any, sid: str) -> Any:
        if isinstance(value, Handle):
            return self._proxy(sid, value)
        if isinstance(value, list):
            return [self._wrap(item, sid) for item in value]
        if isinstance(value, tuple):
            return tuple(self._wrap(item, sid) for item in value)
        if isinstance(value, dict):
            return {self._wrap(k, sid): self._wrap(v, sid) for k, v in value.items()}
        return value

    # Replies: each is read through its command's result model (parse raises BadReply).

    @_reply
    def _value(self, result: Any, sid: str) -> Any:
        return self._decode(parse(wire.ValueResult, result).value, sid)

    @_reply
    def _exec_result(self, result: Any, sid: str) -> ExecResult:
        reply = parse(wire.ExecResult, result)
        return ExecResult(
            stdout=reply.stdout,
            stderr=reply.stderr,
            value=self._decode(reply.value, sid),
            has_value=reply.has_value,
            stdout_dropped=reply.stdout_dropped,
            stderr_dropped=reply.stderr_dropped,
            outputs=[output_from(output) for output in reply.outputs],
            outputs_dropped=reply.outputs_dropped,
        )

    @staticmethod
    def _description(result: Any) -> SessionDescription:
        return session_description(parse(wire.SessionDescription, result))

    @staticmethod
    def _session_opened(result: Any) -> tuple[str, float]:
        reply = parse(wire.SessionOpened, result)
        return reply.session, reply.ttl

    @staticmethod
    def _session_ids(result: Any) -> list[str]:
        return list(parse(wire.SessionListing, result).sessions)

    @staticmethod
    def _handle_list(result: Any) -> list[Handle]:
        return [
            Handle(h.id, h.type, h.repr) for h in parse(wire.HandleList, result).handles
        ]

    @staticmethod
    def _released(result: Any) -> int:
        return parse(wire.ReleaseResult, result).released

    @staticmethod
    def _interrupted(result: Any) -> bool:
        return parse(wire.InterruptResult, result).interrupted

    # -- remote-object bookkeeping ---------------------------------------------------

    def _proxy(self, sid: str, handle: Handle) -> ProxyBase:
        """The one proxy of ``handle`` (a handle id is never sent twice, but be safe)."""
        key = (sid, handle.id)
        with self._lock:
            proxy = self._proxies.get(key)
            if proxy is None:
                proxy = self._proxy_type.__new__(self._proxy_type)
                proxy._init_proxy(self, sid, handle)
                finalizer = weakref.finalize(proxy, self._garbage.append, key)
                finalizer.atexit = False  # the server forgets handles of dead clients
                object.__setattr__(proxy, "_finalizer", finalizer)
                self._proxies[key] = proxy
        if sid == DEFAULT_SESSION:
            self._holding_default()  # outside the lock: it may start a thread
        return proxy

    def _holding_default(self) -> None:
        """The client got an object in ``default``: its lease must be kept alive."""

    def _holds_default(self) -> bool:
        """Whether a proxy of an object in ``default`` is alive."""
        with self._lock:
            return any(sid == DEFAULT_SESSION for sid, _ in list(self._proxies))

    def _live_handle(self, proxy: ProxyBase) -> str:
        if proxy._released:
            from beephost_protocol.errors import NotFound

            raise NotFound(
                f"{proxy!r} was released", {"handle": proxy._handle.id, "client": True}
            )
        return proxy._handle.id

    def _forget(self, proxy: ProxyBase) -> bool:
        """Mark ``proxy`` released; False if it already was (release is idempotent)."""
        with self._lock:
            if proxy._released:
                return False
            object.__setattr__(proxy, "_released", True)
            if proxy._finalizer is not None:
                proxy._finalizer.detach()
            key = (proxy._sid, proxy._handle.id)
            if self._proxies.get(key) is proxy:
                del self._proxies[key]
        return True

    def _forget_session(self, sid: str) -> None:
        """The session is gone, and its handles with it: no release is needed."""
        with self._lock:
            keys = [key for key in self._proxies if key[0] == sid]
        for key in keys:
            proxy = self._proxies.get(key)
            if proxy is not None:
                self._forget(proxy)

    def _take_garbage(self, deadline: float) -> list[wire.ObjectRelease]:
        """Release commands for collected proxies, one per session, emptying the queue."""
        if not self._garbage:
            return []
        by_session: dict[str, list[str]] = {}
        while True:
            try:
                sid, handle_id = self._garbage.popleft()
            except IndexError:
                break
            by_session.setdefault(sid, []).append(handle_id)
        return [self._release(sid, ids, deadline) for sid, ids in by_session.items()]

    def _take_live(self, deadline: float) -> list[wire.ObjectRelease]:
        """Release commands for every live proxy (at close), marking them released."""
        with self._lock:
            proxies = list(self._proxies.values())
        by_session: dict[str, list[str]] = {}
        for proxy in proxies:
            if self._forget(proxy):
                by_session.setdefault(proxy._sid, []).append(proxy._handle.id)
        return [self._release(sid, ids, deadline) for sid, ids in by_session.items()]


__all__ = [
    "DEFAULT_SESSION",
    "IDEMPOTENT",
    "BaseClient",
    "ProxyBase",
    "renewal_failed",
    "renewal_interval",
    "should_retry",
]
