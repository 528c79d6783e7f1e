"""Session worker: runs user code for one session inside the environment's interpreter.

Stdlib only, and it must run on every CPython the controller offers (3.11, 3.13, 3.14):
it is executed as a script with ``python -I worker.py FD CONFIG_JSON`` so that user code
sees the environment's packages and never the server's. A worker started before the
server knew its config (CONFIG_JSON is ``-``) reads it as the channel's first line.

Channel (socket FD, one JSON object per line):
  core -> worker  {"id", "op", "params", "stream"}
  worker -> core  {"id", "event": "stdout"|"stderr", "data"}   (streamed requests only)
                  {"id", "result": {...}} | {"id", "error": {"code", "message", "data"}}
                  (replies also carry "handles", the count, and "created", new ids)
The worker announces itself with ``{"id": 0, "result": {"ready": true, ...}}``.

Every idle worker costs memory in a container with a limit: modules only ``info``
needs (importlib.metadata, platform) are imported there, and typing not at all.
"""

from __future__ import annotations

import ast
import base64
import builtins
import importlib
import io
import json
import linecache
import math
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback

TYPE_CHECKING = False  # not typing's: importing typing costs an idle worker ~1.5 MiB
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# The file its frames name: this source, also when it runs from its cached bytecode
# (then __file__ is the .pyc).
_WORKER_FILE = os.path.abspath((lambda: None).__code__.co_filename)
_REPR_LIMIT = 240
_MAX_DEPTH = 64
_COMPILE_CACHE = 256
# One encoder for every frame: json.dumps with options builds a new one per call.
# ensure_ascii keeps lone surrogates from user strings transmittable.
_encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def _reply_encoder() -> Callable[[Any], str]:
    """``_encode`` for the replies the main thread writes, its C encoder built once.

    ``JSONEncoder.encode`` builds a C encoder per call, most of its time for a small
    reply. Main thread only: the circular check's dict is shared between calls (the
    streamer's thread keeps ``_encode``), and cleared when a call fails (the C encoder
    leaves its entries in it then).
    """
    base = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return base.encode
    markers: dict[int, Any] = {}
    try:
        encoder = make(
            markers,
            base.default,
            json.encoder.encode_basestring_ascii,
            None,
            ":",
            ",",
            False,
            False,
            False,
        )
    except TypeError:  # its arguments are CPython's internals: they may change
        return base.encode

    def encode(value: Any) -> str:
        try:
            return "".join(encoder(value, 0))
        except BaseException:
            markers.clear()
            raise

    return encode


_encode_reply = _reply_encoder()
_decoder = json.JSONDecoder()


def _decode_line(line: bytes) -> Any:
    """``json.loads(line)`` of the core's ASCII lines, by the C scanner when it reads
    the whole line (json.loads looks for the encoding, then runs two regular
    expressions around the scanner); anything else gets ``json.loads``'s answer."""
    text = line.decode()
    try:
        # JSONDecoder.__init__ sets scan_once (the C scanner); typeshed does not list it.
        value, end = _decoder.scan_once(text, 0)  # type: ignore[attr-defined]
    except StopIteration:
        return json.loads(line)
    return value if end == len(text) else json.loads(line)


_TAGS = (
    "$float",
    "$bytes",
    "$tuple",
    "$map",
    "$dict",
    "$handle",
    "$int",
    "$set",
    "$frozenset",
    "$complex",
    "$decimal",
    "$datetime",
    "$date",
    "$time",
    "$timedelta",
    "$uuid",
    "$path",
)
# Tagged forms that decode to hashable values: a set travels by value only if each of
# its members is one of these (or a scalar), so that the receiver can rebuild it.
_HASHABLE_TAGS = frozenset(_TAGS) - {"$map", "$dict", "$set", "$handle"}
# Integers below 10**4000 in magnitude travel as JSON numbers; larger ones as hex text
# ({"$int": "-1f"}): decimal conversion of huge ints is refused (the 4300-digit limit)
# by every JSON parser on the way, hex conversion is linear and never refused.
_BIG_INT = 10**4000


class _NotPlain(Exception):
    """A set member would become a handle: the whole set is one instead."""


class WorkerError(Exception):
    """An error with a protocol code, raised by the worker's own checks."""

    def __init__(self, code: str, message: str, data: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data or {}


class _SignalState:
    """SIGINT raises KeyboardInterrupt only inside user code; elsewhere it is noted.

    The core writes ``{"interrupt": ID}`` to the channel before each SIGINT, so a
    signal noted outside user code can be matched to the request it was meant for:
    one that arrived before its request was read still interrupts it, and a late one
    for a finished request is dropped.
    """

    busy = False  # user code of the current request may run
    critical = 0  # inside a channel write: defer
    pending = False  # a SIGINT arrived while it could not be raised
    delivered = False  # this request got a KeyboardInterrupt from a real SIGINT
    handled = 0  # Python-level handler runs, SIGINT's and the kick's (see _Kicker)


def _on_sigint(signum: int, frame: Any) -> None:
    _SignalState.handled += 1
    if _SignalState.busy and not _SignalState.critical:
        _SignalState.delivered = True
        raise KeyboardInterrupt
    _SignalState.pending = True


def _on_kick(signum: int, frame: Any) -> None:
    # The main thread is checking its signals: a tripped SIGINT's handler runs too.
    _SignalState.handled += 1


class _Kicker:
    """Makes sure a SIGINT's Python handler runs now, not when a blocking call returns.

    Python runs signal handlers in the main thread between bytecodes; the C-level
    handler only notes the signal. Two cases leave that note unseen until the main
    thread's current system call returns, which for ``time.sleep(30)`` is 30 s later:
    the SIGINT lands after the main thread's last check but before it enters the
    call, or the kernel delivers it to another thread (one the user started, or the
    streamer) while the main thread blocks. Python writes each signal's number to the
    wakeup fd; this thread reads it and, until the main thread has run a handler,
    sends it a no-op signal that interrupts its system call (Python then runs every
    pending handler, SIGINT's first, and retries the call: PEP 475). When the handler
    ran before this thread looked, that costs one needless kick.
    """

    KICK = signal.SIGRTMIN + 1  # not SIGINT: its own wakeup bytes are ignored here
    INTERVAL = 0.02
    TRIES = 50  # a main thread that never gets back to Python is not waited on forever

    write_fd = -1

    def __init__(self) -> None:
        self._read, write = os.pipe()
        os.set_blocking(write, False)
        _Kicker.write_fd = write
        signal.signal(self.KICK, _on_kick)
        self.arm()
        self._main = threading.main_thread().ident or 0
        # Kicks must reach the main thread only: this thread never takes them.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, self.KICK})
        thread = threading.Thread(target=self._run, name="beephost-kick", daemon=True)
        thread.start()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, self.KICK})

    @classmethod
    def arm(cls) -> None:
        """(Re)install the wakeup fd: user code may have replaced it (asyncio does)."""
        if cls.write_fd >= 0:
            signal.set_wakeup_fd(cls.write_fd, warn_on_full_buffer=False)

    def _run(self) -> None:
        while data := os.read(self._read, 512):
            if signal.SIGINT not in data:
                continue
            # Any handler run counted from here on came after this SIGINT's trip.
            seen = _SignalState.handled
            for _ in range(self.TRIES):
                time.sleep(self.INTERVAL)
                if _SignalState.handled != seen:
                    break
                signal.pthread_kill(self._main, self.KICK)


class Channel:
    """Line-framed JSON over the socket; writes are atomic w.r.t. SIGINT and threads."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._lock = threading.Lock()

    def read(self) -> dict[str, Any] | None:
        """The next request, blocking; interrupt frames of finished requests are skipped."""
        while (line := self._line(block=True)) is not None:
            message: dict[str, Any] = _decode_line(line)
            if "interrupt" not in message:
                return message
        return None

    def interrupt_requested(self, request_id: Any, wait: float = 0.1) -> bool:
        """Whether an interrupt frame for ``request_id`` has arrived.

        Called with a SIGINT pending, which the core sends right after its frame; the
        frame may still be on its way (a buffered write), so it is waited for up to
        ``wait`` seconds rather than the interrupt dropped. While a request runs the
        core sends nothing but interrupt frames for it.
        """
        for _ in range(10):
            while (line := self._line(block=False)) is not None:
                if json.loads(line).get("interrupt") == request_id:
                    return True
            readable, _, _ = select.select([self._sock], [], [], wait / 10)
            if readable and not self._sock.recv(1, socket.MSG_PEEK):
                return False  # the core is gone
        return False

    def _line(self, block: bool) -> bytes | None:
        while (end := self._buffer.find(b"\n")) < 0:
            try:
                data = self._sock.recv(1 << 16, 0 if block else socket.MSG_DONTWAIT)
            except BlockingIOError:
                return None
            if not data:
                return None
            self._buffer += data
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    def disown(self) -> None:
        """In a child forked by user code: drop its copy of the channel, so that it
        can neither take the session's next request nor write into a reply."""
        self._sock.close()

    def send(self, message: dict[str, Any]) -> None:
        # ensure_ascii keeps lone surrogates from user strings transmittable.
        data = _encode(message).encode() + b"\n"
        self.send_raw(data)

    def send_raw(self, data: bytes) -> None:
        on_main = threading.current_thread() is threading.main_thread()
        if on_main:
            _SignalState.critical += 1
        try:
            with self._lock:
                self._sock.sendall(data)
        finally:
            if on_main:
                _SignalState.critical -= 1
                # Inside user code a deferred SIGINT is for the running request.
                if (
                    _SignalState.pending
                    and _SignalState.busy
                    and not _SignalState.critical
                ):
                    _SignalState.pending = False
                    _SignalState.delivered = True
                    raise KeyboardInterrupt


class Capture(io.TextIOBase):
    """A bounded sys.stdout/sys.stderr: keeps ``limit`` bytes, counts the rest."""

    def __init__(self, name: str, limit: int) -> None:
        self.name_ = name
        self.limit = limit
        self._lock = threading.Lock()
        self.reset(None)

    def reset(self, stream: Streamer | None) -> None:
        with self._lock:
            self.parts: list[str] = []
            self.kept = 0
            self.dropped = 0
            self.streamer = stream

    @property
    def dirty(self) -> bool:
        return bool(self.parts or self.dropped or self.streamer is not None)

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        size = len(text.encode("utf-8", "surrogatepass"))
        with self._lock:
            room = self.limit - self.kept
            if size <= room:
                kept = text
            else:
                kept = text.encode("utf-8", "surrogatepass")[: max(room, 0)].decode(
                    "utf-8", "ignore"
                )
                self.dropped += size - len(kept.encode("utf-8", "surrogatepass"))
            if kept:
                self.kept += len(kept.encode("utf-8", "surrogatepass"))
                if self.streamer is not None:
                    self.streamer.push(self.name_, kept)
                else:
                    self.parts.append(kept)
        return len(text)

    def flush(self) -> None:
        if self.streamer is not None:
            self.streamer.wake()

    def text(self) -> str:
        with self._lock:
            return "".join(self.parts)


class Streamer:
    """Sends captured output as events from a helper thread, batched every interval."""

    def __init__(self, channel: Channel, request_id: int, interval: float) -> None:
        self._channel = channel
        self._id = request_id
        self._interval = interval
        self._pending: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(
            target=self._run, name="beephost-stream", daemon=True
        )
        self._thread.start()

    def push(self, stream: str, data: Any) -> None:
        # ``data`` is text for stdout/stderr, an output dict for ``display``.
        with self._lock:
            self._pending.append((stream, data))

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        merged: list[tuple[str, Any]] = []
        for stream, text in pending:
            if merged and merged[-1][0] == stream and stream != "display":
                merged[-1] = (stream, merged[-1][1] + text)
            else:
                merged.append((stream, text))
        for stream, text in merged:
            self._channel.send({"id": self._id, "event": stream, "data": text})

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join()
        self._flush()


class Session:
    """The namespace and handle table of one session, and the operations on them."""

    def __init__(self, config: dict[str, Any], channel: Channel) -> None:
        self.config = config
        self.channel = channel
        self.namespace: dict[str, Any] = {
            "__name__": "__main__",
            "__builtins__": builtins,
        }
        self.handles: dict[str, Any] = {}
        self.created: list[str] = []  # handles made by the current request
        self.max_handles = int(config.get("max_handles", 1000))
        self.max_result = int(config.get("max_result_bytes", 16 << 20))
        self.stdout = Capture("stdout", int(config.get("max_output_bytes", 1 << 20)))
        self.stderr = Capture("stderr", int(config.get("max_output_bytes", 1 << 20)))
        self.displays = Displays(
            int(config.get("max_display_bytes", 4 << 20)),
            int(config.get("max_display_total_bytes", 8 << 20)),
        )
        self.figures = Figures(self.displays)
        builtins.display = Display(self.displays)  # type: ignore[attr-defined]
        self.counter = 0
        self.plain_only = 0  # > 0 while encoding a set's members: no handles
        self.compiled: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.filenames: dict[tuple[str, str], str] = {}
        self.ops = {
            "eval": self.op_eval,
            "exec": self.op_exec,
            "object.create": self.op_create,
            "object.get_attr": self.op_get_attr,
            "object.set_attr": self.op_set_attr,
            "object.call": self.op_call,
            "object.release": self.op_release,
            "object.list": self.op_list,
            "info": self.op_info,
        }

    # -- values ---------------------------------------------------------------------

    def encode(self, value: Any, depth: int = 0, seen: set[int] | None = None) -> Any:
        if value is None or type(value) in (bool, str):
            return value
        if type(value) is int:
            return value if -_BIG_INT < value < _BIG_INT else encode_big_int(value)
        # Subclasses (IntEnum, numpy scalars' str/int kin) travel as their base value.
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, str):
            return str(value)
        if isinstance(value, int):
            return self.encode(int(value))
        if isinstance(value, float):
            if math.isfinite(value):
                return float(value)
            return {
                "$float": "nan"
                if math.isnan(value)
                else ("inf" if value > 0 else "-inf")
            }
        if isinstance(value, bytes | bytearray):
            return {"$bytes": base64.b64encode(value).decode()}
        if isinstance(value, _CONTAINERS) and depth < _MAX_DEPTH:
            seen = seen if seen is not None else set()
            if id(value) in seen:
                return self.new_handle(value)  # a cycle cannot travel by value
            seen.add(id(value))
            try:
                return self._encode_container(value, depth + 1, seen)
            finally:
                seen.discard(id(value))
        try:
            plain = self._encode_plain(value)
        except _NotPlain:
            raise
        except Exception:  # user code (a tzinfo, __int__, __float__) raised
            plain = _MISSING
        return self.new_handle(value) if plain is _MISSING else plain

    def _encode_plain(self, value: Any) -> Any:
        """The tagged or JSON form of a value type of the table, else _MISSING.

        No module is imported here: a value of a type from ``datetime``, ``decimal``,
        ``uuid``, ``pathlib`` or ``numbers`` can only exist once its module was
        imported, so ``sys.modules`` is asked. Subclasses stay handles (a pandas
        Timestamp is a datetime with nanoseconds), except numbers (numpy's scalars).
        """
        cls = type(value)
        if isinstance(value, complex):  # numpy's complex128 too
            return {"$complex": [self.encode(value.real), self.encode(value.imag)]}
        modules = sys.modules
        if (dt := modules.get("datetime")) is not None:
            if cls is dt.datetime:
                if value.tzinfo is not None and value.utcoffset() is None:
                    return _MISSING  # a tzinfo without an offset: no ISO form
                return {"$datetime": value.isoformat()}
            if cls is dt.date:
                return {"$date": value.isoformat()}
            if cls is dt.time:
                # Only a fixed offset is part of a time's ISO form.
                if value.tzinfo is not None and type(value.tzinfo) is not dt.timezone:
                    return _MISSING
                return {"$time": value.isoformat()}
            if cls is dt.timedelta:
                return {"$timedelta": [value.days, value.seconds, value.microseconds]}
        if (dec := modules.get("decimal")) is not None and cls is dec.Decimal:
            return {"$decimal": str(value)}
        if (uuid := modules.get("uuid")) is not None and cls is uuid.UUID:
            return {"$uuid": str(value)}
        if (path := modules.get("pathlib")) is not None and cls in (
            path.PurePosixPath,
            path.PosixPath,
        ):
            return {"$path": str(value)}
        numpy_name = (
            _text(lambda: cls.__name__, "")
            if _text(lambda: cls.__module__, "") == "numpy"
            else ""
        )
        if numpy_name in ("bool_", "bool"):
            return bool(value)  # numpy's bool is no number to the numbers ABCs
        if numpy_name == "timedelta64":
            return _MISSING  # a numpy integer with a unit: an int would lose the unit
        if (numbers := modules.get("numbers")) is not None and issubclass(
            cls, numbers.Number
        ):
            if issubclass(cls, numbers.Integral):
                return self.encode(int(value))
            if issubclass(cls, numbers.Rational):
                return _MISSING  # a Fraction as a float would lose its exactness
            if issubclass(cls, numbers.Real):
                return self.encode(float(value))
            if issubclass(cls, numbers.Complex):
                return self.encode(complex(value))
        return _MISSING

    def _encode_container(self, value: Any, depth: int, seen: set[int]) -> Any:
        if isinstance(value, list):
            return [self.encode(item, depth, seen) for item in value]
        if isinstance(value, tuple):
            return {"$tuple": [self.encode(item, depth, seen) for item in value]}
        if isinstance(value, set | frozenset):
            return self._encode_set(value, depth, seen)
        if all(type(key) is str for key in value):
            encoded = {
                key: self.encode(item, depth, seen) for key, item in value.items()
            }
            if len(encoded) == 1 and next(iter(encoded)).startswith("$"):
                return {"$dict": encoded}
            return encoded
        return {
            "$map": [
                [self.encode(k, depth, seen), self.encode(v, depth, seen)]
                for k, v in value.items()
            ]
        }

    def _encode_set(
        self, value: set[Any] | frozenset[Any], depth: int, seen: set[int]
    ) -> Any:
        # By value only if the receiver can rebuild it: every member plain and
        # hashable once decoded. Otherwise the whole set is one handle, and no
        # member became one.
        self.plain_only += 1
        try:
            items: list[Any] | None = [self.encode(item, depth, seen) for item in value]
        except _NotPlain:
            items = None
        finally:
            self.plain_only -= 1
        if items is None or not all(map(_hashable_wire, items)):
            return self.new_handle(value)
        return {"$frozenset" if isinstance(value, frozenset) else "$set": items}

    def decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.decode(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key in _TAGS:
                return self._decode_tag(key, inner)
        return {key: self.decode(item) for key, item in value.items()}

    def _decode_tag(self, tag: str, inner: Any) -> Any:
        try:
            if tag == "$float":
                return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}[inner]
            if tag == "$bytes":
                return base64.b64decode(inner, validate=True)
            if tag == "$tuple":
                return tuple(self.decode(item) for item in inner)
            if tag == "$map":
                return {self.decode(k): self.decode(v) for k, v in inner}
            if tag == "$dict":
                return {key: self.decode(item) for key, item in inner.items()}
            if tag == "$int":
                return decode_big_int(inner)
            if tag == "$set":
                return {self.decode(item) for item in _array(inner)}
            if tag == "$frozenset":
                return frozenset(self.decode(item) for item in _array(inner))
            if tag != "$handle":
                return _decode_plain(tag, inner, self.decode)
        except (
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            ArithmeticError,
        ) as exc:
            raise WorkerError(
                "invalid_request", f"malformed {tag} value: {exc}"
            ) from None
        handle_id = inner.get("id") if isinstance(inner, dict) else inner
        return self.resolve(str(handle_id))

    def reply_value(self, value: Any, shown: dict[str, Any] | None = None) -> Any:
        return self.with_bundle(value, self.encode(value), shown)

    def with_bundle(
        self, value: Any, wire: Any, shown: dict[str, Any] | None = None
    ) -> Any:
        """``wire``; if it is a handle, with ``value``'s rich bundle as ``bundle``.

        Only for a reply's own value, never for handles inside it: one bundle per
        reply stays cheap. ``shown`` is the bundle exec already built for its
        execute_result, reused rather than built again.
        """
        handle = wire.get("$handle") if type(wire) is dict else None
        if handle is None:
            return wire
        if shown is None and has_rich_repr(value):
            data, metadata = mime_bundle(value)
            if len(data) > 1:  # text/plain alone is the handle's repr already
                shown = self.displays.bounded("execute_result", data, metadata)
        if shown is not None:
            handle["bundle"] = shown
        return wire

    # -- handles --------------------------------------------------------------------

    def new_handle(self, obj: Any) -> dict[str, Any]:
        if self.plain_only:
            raise _NotPlain
        if len(self.handles) >= self.max_handles:
            raise WorkerError(
                "quota_exceeded",
                f"session holds {len(self.handles)} handles, the limit; release some",
                {"limit": self.max_handles},
            )
        handle_id = "h" + os.urandom(8).hex()
        self.handles[handle_id] = obj
        self.created.append(handle_id)
        return {"$handle": describe(handle_id, obj)}

    def forget_created(self) -> None:
        """Release the handles of a failed request: its client never saw their ids."""
        for handle_id in self.created:
            self.handles.pop(handle_id, None)
        self.created = []

    def resolve(self, handle_id: str) -> Any:
        try:
            return self.handles[handle_id]
        except KeyError:
            raise WorkerError(
                "not_found",
                f"no handle {handle_id!r} in this session",
                {"handle": handle_id},
            ) from None

    # -- operations -----------------------------------------------------------------

    def _compile(self, source: str, mode: str) -> tuple[Any, Any]:
        """Compile user code, cached by source: repeated requests skip the parser.

        Returns (code, trailing): for exec, ``trailing`` is the code of a final
        expression statement, whose value becomes the result.
        """
        key = (mode, source)
        cached = self.compiled.get(key)
        if cached is not None:
            return cached
        self.counter += 1
        filename = f"<beephost-{self.counter}>"
        try:
            compiled = _compile_source(source, filename, mode)
        except SyntaxError as exc:
            # Raised from ast's frames, not the user's: a traceback of none of them.
            raise exc.with_traceback(None) from None
        # Keep the source so tracebacks show the user's lines.
        linecache.cache[filename] = (
            len(source),
            None,
            source.splitlines(True),
            filename,
        )
        if len(self.compiled) >= _COMPILE_CACHE:
            evicted = next(iter(self.compiled))
            del self.compiled[evicted]
            linecache.cache.pop(self.filenames.pop(evicted), None)  # bounded memory
        self.filenames[key] = filename
        self.compiled[key] = compiled
        return compiled

    def op_eval(self, params: dict[str, Any]) -> dict[str, Any]:
        code, _ = self._compile(params["expression"], "eval")
        local_names = params.get("locals")
        if local_names:
            value = eval(code, self.namespace, self.decode(local_names))
        else:
            value = eval(code, self.namespace)
        return {"value": self.reply_value(value)}

    def op_exec(self, params: dict[str, Any]) -> dict[str, Any]:
        code, trailing = self._compile(params["code"], "exec")
        try:
            exec(code, self.namespace)
            if trailing is None:
                return {"value": None, "has_value": False}
            value = eval(trailing, self.namespace)
            shown = None
            if has_rich_repr(value):
                data, metadata = mime_bundle(value)
                if len(data) > 1:  # more than text/plain: the cell's rich result
                    shown = self.displays.add("execute_result", data, metadata)
            return {"value": self.reply_value(value, shown), "has_value": True}
        finally:
            self.figures.flush()  # as Jupyter's inline backend does after a cell

    def op_create(self, params: dict[str, Any]) -> dict[str, Any]:
        target = self.lookup(str(params["target"]))
        obj = target(
            *self.decode(params.get("args") or []),
            **self.decode(params.get("kwargs") or {}),
        )
        return {"value": self.with_bundle(obj, self.new_handle(obj))}

    def op_get_attr(self, params: dict[str, Any]) -> dict[str, Any]:
        obj = self.resolve(params["handle"])
        return {"value": self.reply_value(getattr(obj, params["name"]))}

    def op_set_attr(self, params: dict[str, Any]) -> dict[str, Any]:
        obj = self.resolve(params["handle"])
        setattr(obj, params["name"], self.decode(params.get("value")))
        return {}

    def op_call(self, params: dict[str, Any]) -> dict[str, Any]:
        obj = self.resolve(params["handle"])
        method = params.get("method")
        func = getattr(obj, method) if method else obj
        args = self.decode(params.get("args") or [])
        kwargs = self.decode(params.get("kwargs") or {})
        return {"value": self.reply_value(func(*args, **kwargs))}

    def op_release(self, params: dict[str, Any]) -> dict[str, Any]:
        released = sum(
            self.handles.pop(str(h), _MISSING) is not _MISSING
            for h in params["handles"]
        )
        return {"released": released}

    def op_list(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"handles": [describe(hid, obj) for hid, obj in self.handles.items()]}

    def op_info(self, params: dict[str, Any]) -> dict[str, Any]:
        import importlib.metadata
        import platform

        packages = {}
        for dist in importlib.metadata.distributions():
            name = dist.metadata["Name"]
            if name:
                packages[name] = dist.version
        return {
            "python_version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "pid": os.getpid(),
            "packages": dict(sorted(packages.items(), key=lambda kv: kv[0].lower())),
            "handles": len(self.handles),
        }

    def lookup(self, dotted: str) -> Any:
        """Resolve ``pkg.mod.attr`` (or a name from the session's namespace)."""
        parts = dotted.replace(":", ".").split(".")
        if not all(part.isidentifier() for part in parts):
            raise WorkerError("invalid_request", f"{dotted!r} is not a dotted name")
        if parts[0] in self.namespace:
            obj, rest = self.namespace[parts[0]], parts[1:]
        elif parts[0] in vars(builtins):
            obj, rest = vars(builtins)[parts[0]], parts[1:]
        else:
            obj, rest = None, parts
            for cut in range(len(parts), 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:cut]))
                except ImportError:
                    continue
                rest = parts[cut:]
                break
            else:
                raise WorkerError(
                    "not_found", f"cannot import any module of {dotted!r}"
                )
        for part in rest:
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise WorkerError(
                    "not_found", f"{dotted!r}: no attribute {part!r}"
                ) from None
        if not callable(obj):
            raise WorkerError("invalid_request", f"{dotted!r} is not callable")
        return obj


_MISSING = object()
_CONTAINERS = (list, tuple, dict, set, frozenset)


def _hashable_wire(item: Any) -> bool:
    """Whether the wire value ``item`` decodes to something hashable."""
    if type(item) is list:
        return False
    if type(item) is not dict:
        return True
    if len(item) != 1:
        return False
    ((tag, inner),) = item.items()
    if tag in ("$tuple", "$frozenset"):
        return all(map(_hashable_wire, inner))
    return tag in _HASHABLE_TAGS


def _array(inner: Any) -> list[Any]:
    if type(inner) is not list:
        raise TypeError("expected an array")
    return inner


def _string(inner: Any) -> str:
    if type(inner) is not str:
        raise TypeError("expected a string")
    return inner


def _decode_plain(tag: str, inner: Any, decode: Any) -> Any:
    """The value of a tag of the value table (complex, datetime, ...).

    Imported here, on first use: the worker imports nothing for values at start.
    """
    if tag == "$complex":
        real, imag = (decode(part) for part in _array(inner))
        if not all(type(part) in (int, float) for part in (real, imag)):
            raise TypeError("$complex takes [real, imag] numbers")
        return complex(real, imag)
    if tag == "$decimal":
        import decimal

        return decimal.Decimal(_string(inner))
    if tag == "$uuid":
        import uuid

        return uuid.UUID(_string(inner))
    if tag == "$path":
        import pathlib

        return pathlib.Path(_string(inner))
    import datetime

    if tag == "$timedelta":
        days, seconds, micros = _array(inner)
        if not all(type(part) is int for part in (days, seconds, micros)):
            raise TypeError("$timedelta takes [days, seconds, microseconds] integers")
        return datetime.timedelta(days, seconds, micros)
    kind = {"$datetime": datetime.datetime, "$date": datetime.date}.get(
        tag, datetime.time
    )
    return kind.fromisoformat(_string(inner))


def _compile_source(source: str, filename: str, mode: str) -> tuple[Any, Any]:
    if mode == "eval":
        return compile(source, filename, "eval"), None
    tree = ast.parse(source, filename, "exec")
    trailing = None
    last = tree.body[-1] if tree.body else None
    if isinstance(last, ast.Expr):
        tree.body.pop()
        trailing = compile(ast.Expression(last.value), filename, "eval")
    return compile(tree, filename, "exec"), trailing


def encode_big_int(value: int) -> dict[str, str]:
    return {"$int": format(value, "x")}  # hex: linear, and exempt from the digit limit


def decode_big_int(text: Any) -> int:
    digits = text[1:] if type(text) is str and text.startswith("-") else text
    if type(digits) is not str or not digits or digits.strip("0123456789abcdef"):
        raise ValueError("$int takes lowercase hex digits, with an optional '-'")
    return int(text, 16)


def _text(make: Any, fallback: str) -> str:
    """``make()``, a str, or ``fallback`` if it raises or returns anything else.

    For user-defined ``__str__``/``__repr__``/``__qualname__``: they may raise anything
    (SystemExit included), return a non-str, or loop until interrupted; none of it
    may reach the worker's loop. Once interrupted, no more user code runs.
    """
    if _SignalState.delivered:
        return fallback
    try:
        text = make()
    except BaseException:  # whatever user code raises: the fallback
        return fallback
    return text if type(text) is str else fallback


def describe(handle_id: str, obj: Any) -> dict[str, str]:
    name = type_name(type(obj))
    # A broken __repr__ must not break the reply.
    text = _text(lambda: repr(obj), f"<{name} object (repr failed)>")
    if len(text) > _REPR_LIMIT:
        text = text[: _REPR_LIMIT - 3] + "..."
    return {"id": handle_id, "type": name, "repr": text}


def type_name(cls: type) -> str:
    """``module.QualName`` (builtins bare), safe against metaclass tricks."""
    qualname = _text(lambda: cls.__qualname__, "<unknown type>")
    module = _text(lambda: cls.__module__, "")
    return qualname if module in ("builtins", "") else f"{module}.{qualname}"


def error_payload(exc: BaseException) -> dict[str, Any]:
    """The error object for ``exc``: it never raises, whatever ``exc`` does.

    Everything user-defined that formatting touches (``__str__``, ``__repr__`` of the
    exception and its args, its chain, ``__class__``) is guarded: a failure there
    gives a fallback text, never a dead worker.
    """
    cls = type(exc)  # type(), unlike __class__, runs no user code
    if issubclass(cls, WorkerError):
        return {"code": exc.code, "message": exc.message, "data": exc.data}  # type: ignore[attr-defined]
    name = _text(lambda: cls.__qualname__, "<unknown exception>")
    module = _text(lambda: cls.__module__, "")
    text = _text(lambda: str(exc), "<exception str() failed>")
    return {
        "code": "execution_failed",
        "message": f"{name}: {text}" if text else name,
        "data": {
            "type": name,
            "module": module,
            "args": _describe_args(exc),
            "traceback": _format_traceback(exc, name, text),
        },
    }


def _format_traceback(exc: BaseException, name: str, text: str) -> str:
    # Show only what ran below the worker's last frame: the user's code and libraries.
    tb = start = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _WORKER_FILE:
            start = tb.tb_next
        tb = tb.tb_next
    full = _text(lambda: "".join(traceback.format_exception(type(exc), exc, start)), "")
    if full:
        return full
    # The chain itself cannot be formatted: this exception's frames, and its line.
    try:
        frames = "".join(traceback.format_tb(start))  # runs no user code
    except Exception:
        frames = ""
    header = "Traceback (most recent call last):\n" if frames else ""
    return f"{header}{frames}{name}: {text}\n" if text else f"{header}{frames}{name}\n"


def _describe_args(exc: BaseException) -> list[Any]:
    try:
        args = exc.args
        items = list(args[:8]) if type(args) is tuple else []
    except BaseException:  # an args property may raise anything
        return []
    return [describe_arg(arg) for arg in items]


def describe_arg(arg: Any) -> Any:
    # By type(), never __class__ or user-defined comparisons: no user code runs here
    # except a repr(), which is guarded.
    cls = type(arg)
    if arg is None or cls is bool:  # bool has no subclasses
        return arg
    if issubclass(cls, str):
        return str.__str__(arg)
    if issubclass(cls, int):
        value = int.__int__(arg)
        if -_BIG_INT < value < _BIG_INT:
            return value
        return f"<int of {value.bit_length()} bits>"  # repr() refuses > 4300 digits
    if issubclass(cls, float) and math.isfinite(float.__float__(arg)):
        return float.__float__(arg)
    return _text(lambda: repr(arg), "<repr failed>")[:_REPR_LIMIT]


# -- rich outputs ---------------------------------------------------------------------
#
# The IPython display protocol without IPython: display() and the _repr_*_ methods
# give MIME bundles, sent in Jupyter's output shape. Nothing here imports anything
# (matplotlib included) unless user code already did.

_REPR_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("text/latex", "_repr_latex_"),
    ("application/json", "_repr_json_"),
)
_BASE64_MIMES = ("image/png", "image/jpeg")
# Values of these types have nothing richer than their value: no bundle is built.
_PLAIN_TYPES = (int, float, complex, str, bytes, bytearray, bool, list, tuple, dict)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_INLINE_BACKEND = "module://beephost_inline"
_FIGURE_FORMATS = ("png", "svg")


def _user_call(method: Any, *args: Any, **kwargs: Any) -> Any:
    """A representation method's result, or None if it raises (skipped, never fatal)."""
    if _SignalState.delivered:
        return None  # interrupted: no more user code
    try:
        return method(*args, **kwargs)
    except BaseException:  # SystemExit too: whatever user code raises
        if _SignalState.delivered:
            raise  # a real interrupt (SIGINT) stops the request
        return None


def _split(result: Any) -> tuple[Any, Any]:
    # A _repr_*_ method may return (data, metadata), as IPython allows.
    if type(result) is tuple and len(result) == 2:
        return result
    return result, None


def _mime_value(mime: str, value: Any) -> Any:
    """``value`` in its wire form for ``mime``, or None if it has the wrong type."""
    if mime in _BASE64_MIMES:
        if isinstance(value, bytes | bytearray):
            return base64.b64encode(value).decode()
        return str(value) if isinstance(value, str) else None  # already base64
    if mime == "application/json" or mime.endswith("+json"):
        try:
            _encode(value)  # strict JSON only
        except (TypeError, ValueError, RecursionError):
            return None
        return value
    return str(value) if isinstance(value, str) else None


def _image_size(data: str) -> dict[str, int] | None:
    """Width and height of a base64 PNG, read from its IHDR chunk."""
    try:
        head = base64.b64decode(data[:44])
    except ValueError:
        return None
    if head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return {
        "width": int.from_bytes(head[16:20], "big"),
        "height": int.from_bytes(head[20:24], "big"),
    }


def mime_bundle(
    obj: Any, include: Any = None, exclude: Any = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(data, metadata)`` for ``obj``: its representations, text/plain always."""
    data: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    # A class's _repr_html_ is an unbound function, not its representation.
    if not isinstance(obj, type) and type(obj) not in _PLAIN_TYPES:
        _collect(obj, include, exclude, data, metadata)
    if "text/plain" not in data:
        name = type_name(type(obj))
        data["text/plain"] = _text(lambda: repr(obj), f"<{name} object (repr failed)>")
    for mime in list(data):
        if (include and mime not in include) or (exclude and mime in exclude):
            del data[mime]
    return data, metadata


def _collect(
    obj: Any, include: Any, exclude: Any, data: dict[str, Any], meta: dict[str, Any]
) -> None:
    method = _user_call(getattr, obj, "_repr_mimebundle_", None)
    if callable(method):
        bundle, extra = _split(_user_call(method, include=include, exclude=exclude))
        if isinstance(bundle, dict):
            for mime, value in bundle.items():
                wire = _mime_value(mime, value) if isinstance(mime, str) else None
                if wire is not None:
                    data[mime] = wire
        if isinstance(extra, dict):
            meta.update((k, v) for k, v in extra.items() if isinstance(k, str))
    for mime, name in _REPR_METHODS:
        if mime in data:
            continue
        method = _user_call(getattr, obj, name, None)
        if not callable(method):
            continue
        value, extra = _split(_user_call(method))
        wire = None if value is None else _mime_value(mime, value)
        if wire is not None:
            data[mime] = wire
            if isinstance(extra, dict):
                meta[mime] = extra
    if not data:
        _figure(obj, data)


def _figure(obj: Any, data: dict[str, Any]) -> None:
    # matplotlib figures have no _repr_png_ (IPython registers a formatter for them).
    module = sys.modules.get("matplotlib.figure")
    figure_type = getattr(module, "Figure", None)
    if isinstance(figure_type, type) and isinstance(obj, figure_type):
        mime, value = _render_figure(obj, _figure_format())
        if value is not None:
            data[mime] = value


def _figure_format() -> str:
    # BEEPHOST_FIGURE_FORMAT=svg in the environment (or os.environ, from user code).
    wanted = os.environ.get("BEEPHOST_FIGURE_FORMAT", "png").lower()
    return wanted if wanted in _FIGURE_FORMATS else "png"


def _render_figure(figure: Any, fmt: str) -> tuple[str, str | None]:
    buffer = io.BytesIO()
    # The figure's own size and dpi: figsize 6.4x4.8 at dpi 100 is 640x480 pixels.
    _user_call(figure.savefig, buffer, format=fmt)
    raw = buffer.getvalue()
    if not raw:  # savefig raised
        return "", None
    if fmt == "svg":
        return "image/svg+xml", raw.decode("utf-8", "replace")
    return "image/png", base64.b64encode(raw).decode()


class Displays:
    """The rich outputs of the current request, within the size limits.

    ``per_output`` bounds each MIME value: a larger one is left out of its bundle and
    named in the output's ``metadata["dropped"]`` (mime to size). ``per_request``
    bounds their sum: outputs past it keep only a short note. Every byte left out is
    counted in ``dropped``; nothing is cut silently.
    """

    NOTE = 200  # characters of text/plain an output past the request limit keeps

    def __init__(self, per_output: int, per_request: int) -> None:
        self.per_output = per_output
        self.per_request = per_request
        self.reset(None)

    def reset(self, streamer: Streamer | None) -> None:
        self.outputs: list[dict[str, Any]] = []
        self.size = 0
        self.dropped = 0
        self.streamer = streamer

    @property
    def dirty(self) -> bool:
        return bool(
            self.outputs or self.size or self.dropped or self.streamer is not None
        )

    def add(
        self, output_type: str, data: dict[str, Any], metadata: dict[str, Any]
    ) -> dict[str, Any]:
        """Emit one output (to the stream, or kept for the reply); return it."""
        output = self.bounded(output_type, data, metadata)
        if self.streamer is not None:
            self.streamer.push("display", output)
            self.streamer.wake()
        else:
            self.outputs.append(output)
        return output

    def bounded(
        self, output_type: str, data: dict[str, Any], metadata: dict[str, Any]
    ) -> dict[str, Any]:
        """One output in Jupyter's shape, within the limits, counted in this request."""
        png = data.get("image/png")
        if isinstance(png, str) and "image/png" not in metadata:
            size = _image_size(png)
            if size is not None:
                metadata["image/png"] = size
        return {
            "output_type": output_type,
            "data": self._bounded(data, metadata),
            "metadata": metadata,
        }

    def _bounded(self, data: dict[str, Any], metadata: dict[str, Any]) -> Any:
        dropped: dict[str, int] = {}
        kept: dict[str, Any] = {}
        for mime, value in data.items():
            size = len(value) if isinstance(value, str) else len(_encode(value))
            if size > self.per_output or self.size + size > self.per_request:
                dropped[mime] = size
            else:
                kept[mime] = value
                self.size += size
        if dropped:
            self.dropped += sum(dropped.values())
            metadata["dropped"] = dropped
            if "text/plain" not in kept:
                note = f"[output cut: {', '.join(dropped)} over the size limit]"
                kept["text/plain"] = note[: self.NOTE]
        return kept

    def attach(self, target: dict[str, Any]) -> None:
        # Only when there is something: a reply without rich output is unchanged.
        if self.outputs or self.dropped:
            target["outputs"] = self.outputs
            target["outputs_dropped"] = self.dropped
        self.reset(None)


class Display:
    """The ``display()`` builtin of every session."""

    def __init__(self, displays: Displays) -> None:
        self._displays = displays

    def __call__(
        self,
        *objs: Any,
        include: Any = None,
        exclude: Any = None,
        metadata: dict[str, Any] | None = None,
        raw: bool = False,
    ) -> None:
        """Show each object as a rich output (IPython's display(), without IPython).

        ``raw=True`` takes each object as a MIME bundle ``{mime: data}`` as is.
        """
        for obj in objs:
            if raw:
                if not isinstance(obj, dict):
                    raise TypeError("display(raw=True) takes {mime: data} bundles")
                data = {
                    mime: wire
                    for mime, value in obj.items()
                    if isinstance(mime, str)
                    and (wire := _mime_value(mime, value)) is not None
                }
                meta: dict[str, Any] = {}
            else:
                data, meta = mime_bundle(obj, include, exclude)
            if metadata:
                meta = {**meta, **metadata}
            if data:
                self._displays.add("display_data", data, meta)

    def __repr__(self) -> str:
        return "<built-in function display>"


def has_rich_repr(value: Any) -> bool:
    """Whether ``value`` may have more than text/plain (cheap: no user code runs)."""
    return value is not None and type(value) not in _PLAIN_TYPES


class Figures:
    """Jupyter's inline backend for matplotlib, installed only if user code imports it.

    The worker sets ``MPLBACKEND=Agg`` when unset (no display server; children of user
    code inherit it). When user code imports matplotlib under that default, its backend
    becomes ``module://beephost_inline``: Agg canvases, and a ``show()`` that emits
    every open figure at once and closes it. After each ``exec`` the figures still open
    are emitted and closed the same way.
    """

    def __init__(self, displays: Displays) -> None:
        self._displays = displays
        self.default_backend = "MPLBACKEND" not in os.environ
        if self.default_backend:
            os.environ["MPLBACKEND"] = "Agg"
        # Seen by matplotlib only: the backend module it imports by name.
        module = type(sys)("beephost_inline")
        setattr(module, "__getattr__", _inline_backend_attr)  # noqa: B010
        setattr(module, "show", self.show)  # noqa: B010
        sys.modules["beephost_inline"] = module
        self._finding = False
        if self.default_backend and "matplotlib" not in sys.modules:
            # One string comparison per first import of a module: no cost to speak of.
            sys.meta_path.insert(0, self)

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        """Import hook: matplotlib's own spec, with a loader that adopts the backend."""
        if name != "matplotlib" or self._finding:
            return None
        self._finding = True  # the lookup below must not find us again
        try:
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                spec = find(name, path, target) if find and finder is not self else None
                if spec is not None and spec.loader is not None:
                    spec.loader = _AdoptingLoader(spec.loader)
                    return spec
            return None
        finally:
            self._finding = False

    def show(self, *args: Any, **kwargs: Any) -> None:
        """``plt.show()``: emit every open figure now, then close it."""
        self.flush()

    def flush(self) -> None:
        """Emit and close every open pyplot figure; no-op unless pyplot was imported."""
        helpers = sys.modules.get("matplotlib._pylab_helpers")
        if helpers is None or "matplotlib.pyplot" not in sys.modules:
            return
        gcf = getattr(helpers, "Gcf", None)
        if gcf is None:
            return
        for manager in _user_call(gcf.get_all_fig_managers) or ():
            figure = getattr(getattr(manager, "canvas", None), "figure", None)
            if figure is not None:
                mime, value = _render_figure(figure, _figure_format())
                if value is not None:
                    text = _text(figure.__repr__, "<Figure>")
                    data = {mime: value, "text/plain": text}
                    self._displays.add("display_data", data, {})
            _user_call(gcf.destroy, manager)


def _inline_backend_attr(name: str) -> Any:
    # Imported when matplotlib loads the backend: user code already imported it.
    if name != "FigureCanvas":
        raise AttributeError(name)
    agg = importlib.import_module("matplotlib.backends.backend_agg")
    # Stored: matplotlib then builds its backend class from the module's vars().
    module = sys.modules["beephost_inline"]
    module.FigureCanvas = agg.FigureCanvasAgg  # type: ignore[attr-defined]
    return agg.FigureCanvasAgg


class _AdoptingLoader:
    """matplotlib's loader; once it ran, the inline backend replaces the default Agg."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        params = getattr(module, "rcParams", None)
        # Only under our default: a backend chosen since (os.environ) is kept.
        if os.environ.get("MPLBACKEND") == "Agg" and params is not None:
            _user_call(params.__setitem__, "backend", _INLINE_BACKEND)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)  # get_resource_reader, is_package, ...


class Worker:
    def __init__(self, channel: Channel, config: dict[str, Any]) -> None:
        self.channel = channel
        self.config = config
        self.session = Session(config, self.channel)
        self.stream_interval = float(config.get("stream_interval", 0.05))

    def serve(self) -> None:
        sys.stdout, sys.stderr = self.session.stdout, self.session.stderr
        sys.stdin = io.StringIO()  # input() raises EOFError instead of blocking
        worker_pid = os.getpid()
        os.register_at_fork(after_in_child=self.channel.disown)
        self.channel.send({"id": 0, "result": {"ready": True, "pid": worker_pid}})
        while True:
            request = self.channel.read()
            if request is None:
                return
            try:
                reply = self.process(request)
            except BaseException as exc:  # the last line of defence
                # Nothing a request does may end the worker: every session's state
                # (all users' in "default") lives in it.
                reply = self.last_resort(request.get("id"), exc)
            if os.getpid() != worker_pid:
                # A child user code forked, back from that code: the worker answers
                # for the request, never a copy of it.
                os._exit(0)
            self.channel.send_raw(reply)

    def last_resort(self, request_id: Any, exc: BaseException) -> bytes:
        self.session.forget_created()
        _SignalState.busy = False
        name = _text(lambda: type(exc).__qualname__, "exception")
        error = {"code": "internal", "message": f"worker error ({name})", "data": {}}
        reply = {"id": request_id, "error": error, "handles": len(self.session.handles)}
        return json.dumps(reply).encode() + b"\n"

    def fail(self, exc: BaseException) -> dict[str, Any]:
        """The error object for a failed request.

        Formatting runs user code (``__str__``, ``__repr__``), so it is interruptible
        like user code; error_payload falls back to safe text when it is interrupted.
        """
        if issubclass(type(exc), KeyboardInterrupt) and _SignalState.delivered:
            return {"code": "interrupted", "message": "interrupted", "data": {}}
        # From here on, `delivered` tells error_payload to stop running user code.
        _SignalState.delivered = False
        _SignalState.busy = True
        try:
            return error_payload(exc)
        finally:
            _SignalState.busy = False

    def process(self, request: dict[str, Any]) -> bytes:
        request_id = request.get("id")
        streamer = None
        session = self.session
        session.created = []
        _SignalState.delivered = False
        _Kicker.arm()
        try:
            op = session.ops.get(request.get("op", ""))
            if op is None:
                raise WorkerError(
                    "invalid_request", f"unknown operation {request.get('op')!r}"
                )
            if request.get("stream"):
                streamer = Streamer(
                    self.channel, int(request_id or 0), self.stream_interval
                )
            if streamer is not None or session.stdout.dirty or session.stderr.dirty:
                session.stdout.reset(streamer)
                session.stderr.reset(streamer)
            if streamer is not None or session.displays.dirty:
                session.displays.reset(streamer)
            _SignalState.busy = True
            if _SignalState.pending:  # a SIGINT came before we were ready: whose?
                _SignalState.pending = False
                if self.channel.interrupt_requested(request_id):
                    _SignalState.delivered = True
                    raise KeyboardInterrupt
            try:
                result = op(request.get("params") or {})
            finally:
                _SignalState.busy = False
            reply: dict[str, Any] = {"id": request_id, "result": result}
        except BaseException as exc:
            _SignalState.busy = False
            session.forget_created()
            reply = {"id": request_id, "error": self.fail(exc)}
        if streamer is not None:
            streamer.close()
        self.attach_output(reply)
        reply["handles"] = len(session.handles)
        if "result" in reply:
            if session.created:
                reply["created"] = session.created  # the core ties them to their owner
            # Last: the pipe backend forwards the result's bytes as they are, cut
            # after the members it reads (beephost_core._process, _split_reply).
            reply["result"] = reply.pop("result")
        try:
            data = _encode_reply(reply).encode() + b"\n"
        except (TypeError, ValueError) as exc:
            session.forget_created()
            reply = {
                "id": request_id,
                "error": error_payload(WorkerError("internal", str(exc))),
                "handles": len(session.handles),
            }
            data = json.dumps(reply).encode() + b"\n"
        if len(data) > session.max_result:
            session.forget_created()
            too_large = WorkerError(
                "too_large",
                f"reply of {len(data)} bytes exceeds the {session.max_result}-byte limit",
                {"size": len(data), "limit": session.max_result},
            )
            data = (
                json.dumps(
                    {
                        "id": request_id,
                        "error": error_payload(too_large),
                        "handles": len(session.handles),
                    }
                ).encode()
                + b"\n"
            )
        return data

    def attach_output(self, reply: dict[str, Any]) -> None:
        """Put captured output in exec results, and in every error (it helps debugging)."""
        out, err = self.session.stdout, self.session.stderr
        target = (
            reply["error"].setdefault("data", {})
            if "error" in reply
            else reply["result"]
        )
        if "error" not in reply and "has_value" not in target:
            return
        if "error" in reply:
            # Only a finished exec returns its outputs (a streamed one sent them).
            self.session.displays.reset(None)
        else:
            self.session.displays.attach(target)
        target["stdout"] = out.text() + (
            f"\n[... {out.dropped} bytes truncated]" if out.dropped else ""
        )
        target["stderr"] = err.text() + (
            f"\n[... {err.dropped} bytes truncated]" if err.dropped else ""
        )
        target["stdout_dropped"] = out.dropped
        target["stderr_dropped"] = err.dropped
        out.reset(None)
        err.reset(None)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL us when the server dies, even if user code never yields."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _limit_file_size(max_bytes: int) -> None:
    # The workspace's quota, for user code: no one file may outgrow it (CPython ignores
    # SIGXFSZ, so a write past it raises OSError EFBIG instead of killing the worker).
    if max_bytes > 0:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))


def main() -> None:
    fd = int(sys.argv[1])
    _die_with_parent()
    sock = socket.socket(fileno=fd)
    channel = Channel(sock)
    # "-": started early (beephost_core.early_worker), before the server knew them.
    config = channel.read() if sys.argv[2] == "-" else json.loads(sys.argv[2])
    if config is None:
        os._exit(0)  # the server went away first
    _limit_file_size(int(config.get("max_file_bytes", 0)))
    # After the environment's site-packages: packages installed at run time never
    # shadow the locked ones. The directory exists, so its finder notices new entries.
    sys.path.extend(config.get("sys_path", []))
    signal.signal(signal.SIGINT, _on_sigint)
    _Kicker()
    try:
        Worker(channel, config).serve()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        os._exit(0)  # skip interpreter teardown: user threads must not keep us alive


if __name__ == "__main__":
    main()
