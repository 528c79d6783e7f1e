"""What the bad-input and token tests share: the fuzzed backends, a controller with a
token, a tally of cases, a bystander client, and raw access to each wire (pipe lines,
gRPC bytes, HTTP).

Everything talks to real things: a ``beephost-controller`` process and backend
containers it started. Raw helpers exist because the SDK refuses to send most of what
these tests send.
"""

import functools
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import grpc
import pytest

import beephost_client
from beephost_client import Timeout
from beephost_client.controller import ControllerClient
from beephost_protocol import pb_codec
from tests.e2e.controller_process import ControllerProcess, module_controller
from tests.reliability.summary import record

ENVIRONMENT = "fuzz"
KINDS: tuple[Literal["pipe", "http", "rpc"], ...] = ("pipe", "http", "rpc")
EXECUTOR = "/beephost.exec.v1.Executor/"
#: Short limits: a bystander request that hangs shows up as an error, not a stall.
BYSTANDER_TIMEOUT = Timeout(request=10.0, connect=3.0, grace=2.0)


@dataclass(frozen=True)
class FuzzBackend:
    """One backend of the fuzzed environment, with what a client needs."""

    id: str
    kind: str
    url: str
    token: str

    @property
    def socket_path(self) -> str:
        assert self.url.startswith("unix://"), self.url
        return self.url[len("unix://") :]

    @property
    def target(self) -> str:
        """host:port of an http or grpc backend."""
        return self.url.split("://", 1)[1]


def start_fuzz_backends(api: ControllerClient) -> dict[str, FuzzBackend]:
    """The environment ``fuzz`` (no requirements) and one ready backend per type."""
    env = api.create_environment(ENVIRONMENT, requirements=[])
    assert env.job_id is not None
    job = api.wait_job(env.job_id, timeout=600)
    assert job.succeeded, job.error
    started = [api.start_backend(ENVIRONMENT, kind) for kind in KINDS]
    backends = {}
    for backend in started:
        api.wait_backend(backend.id, timeout=90)
        connection = api.backend_connection(backend.id)
        assert connection.token, "every backend the controller starts has a token"
        backends[backend.type] = FuzzBackend(
            backend.id, backend.type, connection.url, connection.token
        )
    return backends


@pytest.fixture(scope="module")
def fuzz_backends(api: ControllerClient) -> dict[str, FuzzBackend]:
    """:func:`start_fuzz_backends` through the module's ``api`` (the e2e controller's,
    unless the module overrides ``api``)."""
    return start_fuzz_backends(api)


def still_ready(api: ControllerClient, backend: FuzzBackend) -> str:
    """The controller's view after the abuse: ready, never restarted (else a message)."""
    now = api.backend(backend.id)
    if now.status == "ready" and now.restarts == 0:
        return ""
    return f"{backend.kind} backend is {now.status} after {now.restarts} restart(s)"


def assert_still_ready(api: ControllerClient, backend: FuzzBackend) -> None:
    """Fails with :func:`still_ready`'s message unless the backend is ready and was
    never restarted."""
    stray = still_ready(api, backend)
    assert not stray, stray


@dataclass
class Tally:
    """The cases one test tried on one surface: each a row of the summary, the failed
    ones also in ``problems``, which the test asserts empty at its end."""

    area: str
    surface: str
    transport: str
    problems: list[str] = field(default_factory=list)

    def case(self, name: str, got: str, ok: bool) -> None:
        row = f"{self.surface}: {name} -> {got}"
        record(self.area, row, self.transport, "pass" if ok else "FAIL")
        if not ok:
            self.problems.append(row)

    def backend_afterwards(self, api: ControllerClient, backend: FuzzBackend) -> None:
        """The last case: :func:`still_ready`."""
        stray = still_ready(api, backend)
        self.case("backend afterwards", stray or "ready, 0 restarts", not stray)


# -- a controller with a token -------------------------------------------------------------


@dataclass
class TokenController(ControllerProcess):
    """The e2e controller process with ``BEEPHOST_CONTROLLER_TOKEN`` set."""

    token: str = "controller-token-do-not-guess-0123456789"

    def environ(self) -> dict[str, str]:
        env = super().environ()
        env["BEEPHOST_CONTROLLER_TOKEN"] = self.token
        return env

    def client(self, timeout: float = 30.0) -> ControllerClient:
        return ControllerClient(self.url, token=self.token, timeout=timeout)

    @property
    def admin_socket(self) -> str:
        """``settings.admin_socket``: ``<socket_root>/controller/api.sock``."""
        return str(self.socket_root / "controller" / "api.sock")


#: The e2e controller process with a token (so the fuzzing's ``ignored_auth`` check
#: gets its 401), one per module; its containers removed afterwards.
token_controller = module_controller(
    "token-controller", kind=TokenController, name="token_controller"
)


# -- a well-behaved client on another connection -------------------------------------------


@dataclass
class Bystander:
    """A thread evaluating through the SDK on its own connection, in a session of its
    own, until stopped.

    Every answer is checked; every failure is kept. The fuzzing next to it must leave
    it with zero failures. Not in the default session: a fuzzed payload that decodes
    as an empty Interrupt is a well-formed interrupt of the default session (any
    client may send one), and it ended an evaluation running there (seen in CI).
    """

    backend: FuzzBackend
    calls: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "Bystander":
        ready = threading.Event()

        def run() -> None:
            with (
                beephost_client.connect(
                    self.backend.url,
                    token=self.backend.token,
                    timeout=BYSTANDER_TIMEOUT,
                ) as client,
                client.session() as session,
            ):
                n = 0
                while not self._stop.is_set():
                    try:
                        value = session.evaluate("n * 2 + 1", locals={"n": n})
                        if value != n * 2 + 1:
                            self.failures.append(f"wrong answer {value!r} for {n}")
                        self.calls += 1
                    except Exception as exc:
                        self.failures.append(f"{type(exc).__name__}: {exc}")
                    n += 1
                    ready.set()
                    time.sleep(0.005)

        self._thread = threading.Thread(target=run, name="bystander", daemon=True)
        self._thread.start()
        assert ready.wait(30), "the bystander never got an answer"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(30)


# -- the pipe wire -------------------------------------------------------------------------


class PipeWire:
    """One raw connection to a pipe socket: bytes out, JSON lines in."""

    def __init__(self, path: str, timeout: float = 15.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, frame: dict[str, Any]) -> None:
        self.send(json.dumps(frame).encode() + b"\n")

    def reply(self) -> dict[str, Any] | None:
        """The next response (events skipped); None when the server closed."""
        while True:
            line = self.file.readline()
            if not line:
                return None
            message: dict[str, Any] = json.loads(line)
            if "event" not in message:
                return message

    def hello(self, token: str) -> None:
        self.request({"id": "hello", "type": "hello", "params": {"token": token}})
        answer = self.reply()
        if answer is None or "result" not in answer:
            raise AssertionError(f"hello refused: {answer}")

    def closed_by_server(self) -> bool:
        """Whether the server closed the connection (reads EOF, or a reset)."""
        try:
            return self.file.readline() == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@contextmanager
def pipe_wire(path: str, token: str | None = None) -> Iterator[PipeWire]:
    wire = PipeWire(path)
    try:
        if token is not None:
            wire.hello(token)
        yield wire
    finally:
        wire.close()


# -- the gRPC wire -------------------------------------------------------------------------


@dataclass(frozen=True)
class GrpcOutcome:
    """A call's status, and the ``beephost-error`` code in its trailers (if any)."""

    status: grpc.StatusCode
    code: str | None
    reply: bytes | None = None

    def brief(self) -> str:
        """The status's name and the error code, e.g. ``UNAUTHENTICATED unauthorized``."""
        return self.status.name + (f" {self.code}" if self.code else "")


def grpc_call(
    channel: grpc.Channel,
    method: str,
    payload: bytes,
    metadata: Sequence[tuple[str, str]] = (),
    timeout: float = 15.0,
    *,
    stream: bool = False,
) -> GrpcOutcome:
    """One call with raw bytes for a request (no serializer): unary, or with ``stream``
    server-streaming, OK once the stream ends (its messages are dropped)."""
    kind = channel.unary_stream if stream else channel.unary_unary
    call = kind(method, request_serializer=None, response_deserializer=None)
    reply: bytes | None = None
    try:
        answer: Any = call(payload, metadata=tuple(metadata), timeout=timeout)
        if stream:
            for _ in answer:  # the outcome is the stream's end
                pass
        else:
            reply = answer
    except grpc.RpcError as exc:
        return _failed(exc)
    return GrpcOutcome(grpc.StatusCode.OK, None, reply)


grpc_stream_call = functools.partial(grpc_call, stream=True)


def _failed(exc: grpc.RpcError) -> GrpcOutcome:
    call: Any = exc  # a grpc.Call too, which grpc-stubs cannot say
    error = pb_codec.error_from_metadata(call.trailing_metadata())
    return GrpcOutcome(call.code(), error.wire_code if error else None)


# -- HTTP without a client's manners -------------------------------------------------------


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error_code(self) -> str | None:
        """``error.code`` of a JSON error body, else None."""
        try:
            decoded = json.loads(self.body)
        except ValueError:
            return None
        error = decoded.get("error") if isinstance(decoded, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        return code if isinstance(code, str) else None

    def brief(self) -> str:
        """The status and the error code (if any), e.g. ``401 unauthorized``."""
        code = self.error_code()
        return f"{self.status}" + (f" {code}" if code else "")


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


def http_request(
    base: str,
    method: str,
    path: str,
    authorization: str | None = None,
    body: bytes | None = None,
    timeout: float = 30.0,
    headers: Mapping[str, str] | None = None,
) -> HttpAnswer:
    """One request to ``http://host:port`` or ``unix:///socket``, the header as given.

    ``authorization`` is sent byte for byte (latin-1), however malformed; a body is
    JSON unless ``headers`` name another Content-Type.
    """
    if base.startswith("unix://"):
        conn: http.client.HTTPConnection = _UnixHTTPConnection(
            base[len("unix://") :], timeout
        )
    else:
        host, port = base.split("://", 1)[1].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        if authorization is not None:
            conn.putheader("Authorization", authorization.encode("latin-1"))
        extra = dict(headers or {})
        if body is not None:
            conn.putheader(
                "Content-Type", extra.pop("Content-Type", "application/json")
            )
            conn.putheader("Content-Length", str(len(body)))
        for name, value in extra.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return HttpAnswer(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read(),
        )
    finally:
        conn.close()


def raw_http(host: str, port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Bytes to a TCP port, whatever the server answers before it closes (or times out)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)
