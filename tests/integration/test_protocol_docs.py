"""docs/protocol/pipe.md is true: its transcript replays against a real pipe backend.

The server is the real ``beephost-pipe-backend`` process on a short temporary socket,
configured as the doc says (token ``s3cret``, otherwise defaults). Every exchange of the
doc is sent, in order, and every reply must equal the documented one except at the
``vary`` paths, where only the JSON type must match. See tests/unit/protocol/
test_schema.py for the marker convention and docs/protocol/pipe.md, "How to read the
examples", for the rules.

What the transcript cannot show (limits being hit, expiry, the in-flight bound,
shutdown) is checked against the same real server, with the documented examples where
there are some.
"""

import base64
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.pipe.support import connect_unix
from tests.integration.processes import run_module, service_env
from tests.unit.protocol.test_schema import Block, Exchange, exchanges, load_doc

TOKEN = "s3cret"
START_TIMEOUT = 30.0
READ_TIMEOUT = 30.0  # for one frame
EXCHANGE_TIMEOUT = 60.0  # for all frames of one exchange
STOP_TIMEOUT = 20.0


class Connection:
    """A blocking NDJSON connection where every read has a deadline."""

    def __init__(self, path: Path) -> None:
        self.sock = connect_unix(path, READ_TIMEOUT)
        self.buffer = b""

    def send(
        self,
        message: dict[str, Any],
        *,
        allow_nan: bool = False,
        payload: bytes | None = None,
    ) -> None:
        line = json.dumps(message, allow_nan=allow_nan).encode() + b"\n"
        if payload is not None:  # a binary frame (pipe.md §4)
            line = b"+%d " % len(payload) + line + payload
        self.send_raw(line)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, deadline: float) -> dict[str, Any] | None:
        """The next frame, or None at end of stream; TimeoutError past ``deadline``.

        A binary frame's payload is put into its result as base64 ``data``, the form
        the schema describes, and the frame is marked with ``"$binary": true``.
        """
        if not self._fill(lambda: b"\n" in self.buffer, deadline):
            return None
        line, _, self.buffer = self.buffer.partition(b"\n")
        if not line.startswith(b"+"):
            frame: dict[str, Any] = json.loads(line)
            return frame
        size, _, line = line[1:].partition(b" ")
        if not self._fill(lambda: len(self.buffer) >= int(size), deadline):
            return None
        payload, self.buffer = self.buffer[: int(size)], self.buffer[int(size) :]
        frame = json.loads(line)
        frame["result"]["data"] = base64.b64encode(payload).decode()
        frame["$binary"] = True
        return frame

    def _fill(self, enough: Callable[[], bool], deadline: float) -> bool:
        """Receive until ``enough()``; False at end of stream."""
        while not enough():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete frame before the deadline")
            self.sock.settimeout(min(remaining, READ_TIMEOUT))
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def close(self) -> None:
        self.sock.close()


# -- the server ------------------------------------------------------------------------


def _ping_ready(path: Path) -> bool:
    try:
        conn = Connection(path)
    except OSError:
        return False
    try:
        conn.sock.settimeout(2.0)
        conn.send({"id": 0, "type": "ping"})
        frame = conn.read(time.monotonic() + 2.0)
        return bool(frame and frame.get("result", {}).get("ready"))
    except OSError:
        return False
    finally:
        conn.close()


@dataclass
class Server:
    path: Path
    process: subprocess.Popen[bytes]
    log: Path
    connections: list[Connection] = field(default_factory=list)

    def connect(self) -> Connection:
        """A connection that has sent the token (closed with the server)."""
        conn = Connection(self.path)
        self.connections.append(conn)
        conn.send({"id": "hello", "type": "hello", "params": {"token": TOKEN}})
        reply = conn.read(time.monotonic() + READ_TIMEOUT)
        assert reply is not None
        assert "result" in reply, reply
        return conn


@contextlib.contextmanager
def running_server(**settings: str) -> Iterator[Server]:
    """A fresh real pipe backend with the doc's token and ``settings`` (by setting name,
    without the prefix); stopped and cleaned up after."""
    directory = Path(tempfile.mkdtemp(prefix="bh", dir="/tmp"))
    path = directory / "p.sock"
    env = service_env(
        BEEPHOST_PIPE_BACKEND_SOCKET_PATH=str(path),
        BEEPHOST_PIPE_BACKEND_METRICS_PORT="0",
        BEEPHOST_PIPE_BACKEND_TOKEN=TOKEN,
    )
    env |= {f"BEEPHOST_PIPE_BACKEND_{k.upper()}": v for k, v in settings.items()}
    log_path = directory / "server.log"
    connections: list[Connection] = []
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "beephost_pipe_backend"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _ping_ready(path):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"pipe backend did not become ready:\n{log_path.read_text()}"
                )
            time.sleep(0.05)
        yield Server(path, process, log_path, connections)
    finally:
        for conn in connections:
            conn.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def pipe_server() -> Iterator[Path]:
    """A fresh real pipe backend as the doc describes it: yields its socket path."""
    with running_server() as server:
        yield server.path


# -- matching replies against the doc -----------------------------------------------------


def _kind(value: Any) -> str:
    if value is None or isinstance(value, bool | str | list | dict):
        return type(value).__name__
    if isinstance(value, int | float):
        return "number"
    raise TypeError(type(value))


def _varies(path: tuple[str, ...], patterns: list[str]) -> bool:
    for pattern in patterns:
        parts = pattern.split(".")
        if len(parts) == len(path) and all(
            p in ("*", segment) for p, segment in zip(parts, path, strict=True)
        ):
            return True
    return False


def _short(message: Any, limit: int = 800) -> str:
    text = json.dumps(message)
    return text if len(text) <= limit else text[:limit] + "..."


class Transcript:
    """Replays exchanges, learning the values the server makes up."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.learned: dict[str, str] = {}  # documented string -> the real one
        self.problems: list[str] = []
        self.conn = Connection(path)

    def substitute(self, value: Any) -> Any:
        if isinstance(value, str):
            for documented, real in self.learned.items():
                value = value.replace(documented, real)
            return value
        if isinstance(value, list):
            return [self.substitute(item) for item in value]
        if isinstance(value, dict):
            return {key: self.substitute(item) for key, item in value.items()}
        return value

    def compare(
        self,
        expected: Any,
        actual: Any,
        vary: list[str],
        path: tuple[str, ...] = (),
    ) -> list[str]:
        where = ".".join(path) or "(message)"
        if _kind(expected) != _kind(actual):
            return [f"{where}: expected {expected!r}, got {actual!r}"]
        if _varies(path, vary):
            if isinstance(expected, str) and expected != actual:
                self.learned[expected] = actual
            return []
        if isinstance(expected, dict):
            diffs = []
            if expected.keys() != actual.keys():
                diffs.append(
                    f"{where}: keys {sorted(expected)} documented, "
                    f"{sorted(actual)} sent"
                )
            for key in expected.keys() & actual.keys():
                diffs += self.compare(expected[key], actual[key], vary, (*path, key))
            return diffs
        if isinstance(expected, list):
            if len(expected) != len(actual):
                return [f"{where}: expected {expected!r}, got {actual!r}"]
            diffs = []
            for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
                diffs += self.compare(want, got, vary, (*path, str(index)))
            return diffs
        if expected != actual:
            return [f"{where}: expected {expected!r}, got {actual!r}"]
        return []

    def replay(self, exchange: Exchange) -> None:
        first = exchange.requests[0]
        for request in exchange.requests:
            time.sleep(request.pause)
            self.conn.send(
                self.substitute(request.message),
                allow_nan=not request.strict,
                payload=request.payload,
            )
        pending = {
            json.dumps(reply.message["id"])
            for reply in exchange.replies
            if reply.kind == "response"
        }
        frames: list[dict[str, Any]] = []
        deadline = time.monotonic() + EXCHANGE_TIMEOUT
        while pending:
            frame = self.conn.read(deadline)
            if frame is None:
                self.problems.append(f"{first}: connection closed; got {frames}")
                self.reconnect()
                return
            frames.append(frame)
            if "event" not in frame:
                pending.discard(json.dumps(frame.get("id")))
        self.check(exchange, frames)
        if any(reply.closes for reply in exchange.replies):
            if self.conn.read(time.monotonic() + READ_TIMEOUT) is not None:
                self.problems.append(f"{first}: the server did not close")
            self.reconnect()

    def check(self, exchange: Exchange, frames: list[dict[str, Any]]) -> None:
        responses = [frame for frame in frames if "event" not in frame]
        documented = [reply for reply in exchange.replies if reply.kind == "response"]
        sent_ids = [frame.get("id") for frame in responses]
        documented_ids = [reply.message["id"] for reply in documented]
        if sent_ids != documented_ids:
            self.problems.append(
                f"{documented[0]}: replies came in the order {sent_ids}, "
                f"documented {documented_ids}"
            )
        by_id = {json.dumps(frame.get("id")): frame for frame in responses}
        for reply in documented:
            actual = dict(by_id[json.dumps(reply.message["id"])])
            if actual.pop("$binary", False) != (reply.payload is not None):
                self.problems.append(f"{reply}: binary frame or not, unlike the doc")
            diffs = self.compare(self.substitute(reply.logical), actual, reply.vary)
            if diffs:
                self.problems.append(
                    f"{reply}: " + "; ".join(diffs) + f"\n    sent: {_short(actual)}"
                )
        self.check_events(exchange.replies, frames)

    def check_events(self, replies: list[Block], frames: list[dict[str, Any]]) -> None:
        def streams(messages: list[dict[str, Any]]) -> dict[str, Any]:
            joined: dict[str, Any] = {}
            for message in messages:
                key = f"{json.dumps(message['id'])}/{message['event']}"
                if message["event"] == "display":  # outputs: a list, in order
                    joined[key] = [*joined.get(key, []), message["data"]]
                else:
                    joined[key] = joined.get(key, "") + message["data"]
            return joined

        documented = [self.substitute(r.message) for r in replies if r.kind == "event"]
        sent = [frame for frame in frames if "event" in frame]
        if streams(documented) != streams(sent):
            self.problems.append(
                f"events: documented {streams(documented)}, sent {streams(sent)}"
            )
        answered: set[str] = set()
        for frame in frames:
            request = json.dumps(frame.get("id"))
            if "event" in frame and request in answered:
                self.problems.append(f"an event after its response: {frame}")
            if "event" not in frame:
                answered.add(request)

    def reconnect(self) -> None:
        self.conn.close()
        self.conn = Connection(self.path)

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def transcript(pipe_server: Path) -> Iterator[Transcript]:
    replayer = Transcript(pipe_server)
    yield replayer
    replayer.close()


def test_doc_transcript_replays(transcript: Transcript) -> None:
    replayed = exchanges(load_doc())
    assert replayed
    for exchange in replayed:
        transcript.replay(exchange)
    assert not transcript.problems, "\n".join(transcript.problems)


def _example(code: str, request_id: int | None = None) -> dict[str, Any]:
    """The documented example reply with this error code and id."""
    (block,) = (
        block
        for block in load_doc()
        if block.kind == "example"
        and block.message["id"] == request_id
        and block.message["error"]["code"] == code
    )
    return block.message


def _read_all(conn: Connection, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + EXCHANGE_TIMEOUT
    frames: list[dict[str, Any]] = []
    for _ in range(count):
        frame = conn.read(deadline)
        assert frame is not None, f"closed after {frames}"
        frames.append(frame)
    return frames


def test_over_long_line_is_answered_as_documented(transcript: Transcript) -> None:
    anonymous = _example("too_large")
    size = anonymous["error"]["data"]["size"]
    conn = transcript.conn
    conn.send_raw(b"x" * size + b"\n")
    conn.send({"id": 1, "type": "ping"})
    # With "id" first, the error names the request.
    named = _example("too_large", 102)
    head = b'{"id": 102, "type": "eval", "params": {"expression": "'
    tail = b'"}}'
    conn.send_raw(head + b"x" * (size - len(head) - len(tail)) + tail + b"\n")
    conn.send({"id": 2, "type": "ping"})
    assert _read_all(conn, 4) == [
        anonymous,
        {"id": 1, "result": {"pong": True, "ready": True}},
        named,
        {"id": 2, "result": {"pong": True, "ready": True}},
    ]


def test_binary_frames_that_cannot_be_served_are_answered_as_documented(
    transcript: Transcript,
) -> None:
    conn = transcript.conn
    documented = _example("too_large", 106)
    size = documented["error"]["data"]["size"]
    # Announced over the limit: the payload is skipped whole, and nothing in it runs.
    line = json.dumps({"id": 106, "type": "file.upload.write", "params": {}})
    conn.send_raw(b"+%d %s\n" % (size, line.encode()))
    filler = b'{"id": 1, "type": "ping"}\n'
    conn.send_raw(filler * (size // len(filler)) + b"x" * (size % len(filler)))
    # A payload for a command that takes none: refused, and framing holds.
    conn.send({"id": 2, "type": "ping"}, payload=b"\n\n")
    conn.send({"id": 3, "type": "ping"})
    too_large, refused, answered = _read_all(conn, 3)
    assert too_large == documented
    assert refused["id"] == 2
    assert refused["error"]["code"] == "invalid_request"
    assert "takes no binary payload" in refused["error"]["message"]
    assert answered == {"id": 3, "result": {"pong": True, "ready": True}}


def test_a_malformed_prefix_is_answered_then_the_connection_closed(
    transcript: Transcript,
) -> None:
    conn = transcript.conn
    conn.send_raw(b'+twelve {"id": 1, "type": "ping"}\nabcdefghijkl')
    assert conn.read(time.monotonic() + READ_TIMEOUT) == _example("invalid_request")
    assert conn.read(time.monotonic() + READ_TIMEOUT) is None
    transcript.reconnect()


def test_expired_session_is_lost_then_closable() -> None:
    # A short server default makes the idle check run every 0.5 s (a quarter of it).
    documented = _example("session_lost", 103)
    with running_server(SESSION_TTL="2") as server:
        conn = server.connect()
        deadline = time.monotonic() + EXCHANGE_TIMEOUT

        def call(request_id: int, kind: str, **params: Any) -> dict[str, Any]:
            conn.send({"id": request_id, "type": kind, "params": params})
            reply = conn.read(deadline)
            assert reply is not None
            return reply

        session = call(1, "session.open", ttl=0.5)["result"]["session"]
        # Watch without touching it: a request would keep it alive.
        while session in call(2, "session.list")["result"]["sessions"]:
            assert time.monotonic() < deadline, "the session never expired"
            time.sleep(0.1)
        old = documented["error"]["data"]["session"]
        expected = json.loads(json.dumps(documented).replace(old, session))
        assert call(103, "eval", session=session, expression="1") == expected
        assert call(4, "session.close", session=session) == {
            "id": 4,
            "result": {"closed": True},
        }
        assert call(5, "eval", session=session, expression="1")["error"] == {
            "code": "not_found",
            "message": f"no session {session!r}",
            "data": {"session": session},
        }


def _exec(request_id: int, code: str, session: str = "default") -> bytes:
    params = {"code": code, "session": session}
    return (
        json.dumps({"id": request_id, "type": "exec", "params": params}).encode()
        + b"\n"
    )


def test_in_flight_bound_holds_within_one_write() -> None:
    """pipe.md, "In-flight bound": at most max_inflight run at once, even from one write."""
    bound, count, nap = 2, 5, 0.5
    with running_server(MAX_INFLIGHT=str(bound)) as server:
        conn = server.connect()
        sessions = []
        for index in range(count):  # separate sessions, or they would queue anyway
            conn.send({"id": f"open-{index}", "type": "session.open"})
            (opened,) = _read_all(conn, 1)
            sessions.append(opened["result"]["session"])
        code = f"import time\nstarted = time.time()\ntime.sleep({nap})\n(started, time.time())"
        batch = b"".join(_exec(i, code, s) for i, s in enumerate(sessions))
        conn.send_raw(batch + b'{"id": "ping", "type": "ping"}\n')  # one write
        frames = _read_all(conn, count + 1)
    replies = {frame["id"]: frame for frame in frames}
    assert sorted(replies, key=str) == [*range(count), "ping"]
    spans = [tuple(replies[i]["result"]["value"]["$tuple"]) for i in range(count)]
    running = max(
        sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans
    )
    assert running == bound, spans
    # The ping behind them waited for slots too.
    order = [frame["id"] for frame in frames]
    assert order.index("ping") >= count - bound, order


def test_shutdown_answers_every_request() -> None:
    """pipe.md, "Shutdown": drained, refused, abandoned; each request gets one reply."""
    drain = 3.0
    refused = _example("unavailable", 104)["error"]
    abandoned = _example("unavailable", 105)["error"]
    with running_server(DRAIN_TIMEOUT=str(drain), MAX_INFLIGHT="2") as server:
        conn = server.connect()
        conn.send({"id": 0, "type": "session.open"})
        (opened,) = _read_all(conn, 1)
        other = opened["result"]["session"]
        conn.send_raw(
            _exec(1, "import time\ntime.sleep(60)")  # outlives the drain
            + _exec(2, "import time\ntime.sleep(1)\n'finished'", other)  # within it
            + _exec(3, "'never runs'", other)  # held: the connection is at its bound
        )
        watcher = server.connect()
        time.sleep(0.3)  # let 1 and 2 start
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        deadline = signalled + EXCHANGE_TIMEOUT
        while True:  # the server says it is going away ...
            watcher.send({"id": "ping", "type": "ping"})
            pong = watcher.read(deadline)
            assert pong is not None
            if pong["result"]["ready"] is False:
                break
            time.sleep(0.02)
        with pytest.raises(ConnectionRefusedError):  # ... takes no new connection ...
            Connection(server.path).close()
        watcher.send({"id": 10, "type": "eval", "params": {"expression": "1"}})
        assert watcher.read(deadline) == {"id": 10, "error": refused}  # ... nor request
        frames: list[tuple[float, dict[str, Any]]] = []
        while (frame := conn.read(deadline)) is not None:
            frames.append((time.monotonic() - signalled, frame))
        assert watcher.read(deadline) is None
        assert server.process.wait(timeout=STOP_TIMEOUT) == 0
        assert not server.path.exists()
    replies = {frame["id"]: (at, frame) for at, frame in frames}
    assert [frame["id"] for _, frame in frames] == [2, 3, 1], frames
    assert replies[2][1]["result"]["value"] == "finished"
    assert replies[3][1] == {"id": 3, "error": refused}
    assert replies[1][1] == {"id": 1, "error": abandoned}
    assert replies[2][0] < drain <= replies[1][0] + 0.2, frames


def _healthcheck(path: Path, token: str | None) -> subprocess.CompletedProcess[str]:
    settings = {"BEEPHOST_PIPE_BACKEND_SOCKET_PATH": str(path)}
    if token is not None:
        settings["BEEPHOST_PIPE_BACKEND_TOKEN"] = token
    return run_module(
        "beephost_pipe_backend", "healthcheck", timeout=STOP_TIMEOUT, **settings
    )


def test_healthcheck_command(pipe_server: Path) -> None:
    # ping needs no token, and the probe sends none: a container may hold only the
    # token's digest, so whatever TOKEN it has is not its business.
    for token in (TOKEN, None, "wrong"):
        done = _healthcheck(pipe_server, token)
        assert (done.returncode, done.stdout.strip()) == (0, "ready")
    done = _healthcheck(pipe_server.with_name("absent.sock"), None)
    assert done.returncode == 1
