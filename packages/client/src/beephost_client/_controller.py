"""The controller REST API without I/O: result types, requests, decoding, error mapping.

:class:`~beephost_client.controller.ControllerClient` does the I/O; everything it
decides (which request carries a call, how a reply becomes a result type or an
exception, when a job or backend wait is over) lives here and is unit-tested with
bytes and dicts.
"""

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlencode

from beephost_client._exceptions import ErrorReply
from beephost_client._transports import _http11
from beephost_protocol.errors import (
    BeepHostError,
    InternalError,
    NotFound,
    Unavailable,
)
from beephost_protocol.errors import (
    Conflict as Conflict,  # re-exported: beephost_client.controller.Conflict
)

BackendType = Literal["http", "pipe", "rpc"]
"""The backend transports the controller starts."""

JOB_FINISHED = frozenset({"succeeded", "failed"})
BACKEND_FINISHED = frozenset({"exited", "stopped"})


# -- result types -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Runtime:
    """A CPython minor version the controller offers.

    Attributes:
        python: The minor version, e.g. ``3.13``.
        version: The exact CPython version once initialised, e.g. ``3.13.5``.
        image: The base image reference once initialised.
        source: Where the base image came from: ``debian`` or ``registry``.
        initialised: Whether the base image exists (``beep-host init``).
    """

    python: str
    version: str | None = None
    image: str | None = None
    source: str | None = None
    initialised: bool = False


@dataclass(frozen=True, slots=True)
class Environment:
    """A runtime plus requirements, built into a content-addressed image.

    Attributes:
        name: The environment's unique name.
        python: Its CPython minor version.
        requirements: Requirement specifiers, normalised and sorted by the controller.
        network: Whether its backends get network access.
        admin: Whether this is the admin environment.
        status: ``pending``, ``building``, ``ready`` or ``failed``.
        image: The image reference once built.
        error: Why the last build failed.
        job_id: The id of its last build job.
        created_at: Creation time, Unix seconds.
        updated_at: Time of the last change, Unix seconds.
    """

    name: str
    python: str = ""
    requirements: tuple[str, ...] = ()
    network: bool = False
    admin: bool = False
    status: str = "pending"
    image: str | None = None
    error: str | None = None
    job_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Job:
    """A long-running controller task: a runtime init or an environment build.

    Attributes:
        id: The job's id, e.g. ``job-1f2e3d4c5b6a``.
        kind: ``init`` or ``build``.
        target: The runtime (``3.13``) or environment name it works on.
        status: ``queued``, ``running``, ``succeeded`` or ``failed``.
        error: Why it failed.
        created_at: Creation time, Unix seconds.
        started_at: Start time, once started.
        finished_at: End time, once finished.
    """

    id: str
    kind: str = ""
    target: str = ""
    status: str = "queued"
    error: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        """Whether the job ended (``succeeded`` or ``failed``)."""
        return self.status in JOB_FINISHED

    @property
    def succeeded(self) -> bool:
        """Whether the job ended successfully."""
        return self.status == "succeeded"


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a job's log.

    Attributes:
        seq: Its position in the log; increasing, not necessarily contiguous.
        line: The text, without its newline.
    """

    seq: int
    line: str


@dataclass(frozen=True, slots=True)
class JobLogPage:
    """A page of a job's log (:meth:`ControllerClient.job_log`).

    Attributes:
        job: The job, as of this page.
        lines: The lines after the requested position, oldest first.
        next: Pass as ``after`` to get the following lines.
    """

    job: Job
    lines: tuple[LogLine, ...]
    next: int


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of a backend container; ``None`` keeps the controller's default.

    Attributes:
        memory_mb: Memory limit in MiB.
        cpus: CPU limit, in CPUs (``0.5`` is half of one).
        pids: Maximum number of processes.
    """

    memory_mb: int | None = None
    cpus: float | None = None
    pids: int | None = None


@dataclass(frozen=True, slots=True)
class Backend:
    """A backend container the controller runs for an environment.

    Attributes:
        id: The backend's id.
        environment: The environment it runs.
        type: Its transport: ``http``, ``pipe`` or ``rpc``.
        status: ``starting``, ``ready``, ``unhealthy``, ``exited`` or ``stopped``.
        reason: Why it is in that status (an exit code, a failed health check).
        endpoint: The URL to connect to (``http://``, ``grpc://`` or ``unix://``).
        token: Its token; only in the reply that created it, else ``None``.
        container_id: The Docker container's id.
        created_at: Creation time, Unix seconds.
        ready_at: When it first became ready.
        restarts: How often it was restarted after a crash (Docker's and the
            controller's restarts).
        exit_code: The exit code of its last exit.
        last_exit: Why it last exited: ``crashed``, ``oom_killed`` or ``stopped``.
        admin: Whether it holds a controller token (admin environment).
        limits: Its resource limits.
        options: Its hardening (``read_only``, ``network``, ``user``, ``cap_add``...).
    """

    id: str
    environment: str = ""
    type: str = ""
    status: str = "starting"
    reason: str | None = None
    endpoint: str | None = None
    token: str | None = field(default=None, repr=False)
    container_id: str | None = None
    created_at: float = 0.0
    ready_at: float | None = None
    restarts: int = 0
    exit_code: int | None = None
    last_exit: str | None = None
    admin: bool = False
    limits: Limits = field(default_factory=Limits)
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BackendConnection:
    """What a client needs to reach a backend.

    Attributes:
        url: The backend's URL; its scheme picks the transport.
        token: The backend's token, if it has one.
    """

    url: str
    token: str | None = field(default=None, repr=False)


# -- requests and responses -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """One call of the controller's REST API, as a transport sends it.

    Attributes:
        method: The HTTP method.
        path: The path below the controller's URL, with its query string.
        body: The JSON body, if any.
    """

    method: str
    path: str
    body: bytes | None = None

    def json(self) -> Any:
        """The body, decoded (``None`` without one)."""
        return json.loads(self.body) if self.body else None


class Response:
    """A reply of the controller: status, headers and a body read on demand.

    A transport returns it as soon as the head arrived; the body is read by
    :meth:`read` or, piece by piece, by :meth:`iter_bytes` (streamed replies).
    Reading to the end, or :meth:`close`, gives the connection back.

    Args:
        status: The HTTP status.
        headers: Header names in lower case.
        content: The body: bytes, or an iterable of pieces (read lazily).
        on_close: Called once when the body is done with (a transport's release).

    Example::

        def handler(request):
            return Response(200, content=b'{"status": "ok"}')
    """

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str] | None = None,
        content: bytes | Iterable[bytes] = b"",
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.status = status
        self.headers: Mapping[str, str] = dict(headers or {})
        self._content = content
        self._on_close = on_close

    def iter_bytes(self) -> Iterator[bytes]:
        """Yield the body's pieces as they arrive, then release the connection."""
        try:
            if isinstance(self._content, bytes):
                if self._content:
                    yield self._content
            else:
                for piece in self._content:
                    if piece:
                        yield piece
        finally:
            self.close()

    def read(self) -> bytes:
        """The whole body."""
        return b"".join(self.iter_bytes())

    def close(self) -> None:
        """Give the connection back (closed, unless the body was read to its end)."""
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


def _q(segment: str) -> str:
    return quote(segment, safe="")


def request(
    method: str,
    path: str,
    *,
    query: Mapping[str, object] | None = None,
    body: Mapping[str, Any] | None = None,
) -> Request:
    """Build a request; ``None`` values are left out of the query and the body."""
    if query:
        params = {k: v for k, v in query.items() if v is not None}
        if params:
            path = f"{path}?{urlencode(params)}"
    data = None
    if body is not None:
        data = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
    return Request(method, path, data)


def environment_path(name: str) -> str:
    return f"/api/v1/environments/{_q(name)}"


def job_path(job_id: str) -> str:
    return f"/api/v1/jobs/{_q(job_id)}"


def backend_path(backend_id: str) -> str:
    return f"/api/v1/backends/{_q(backend_id)}"


def environment_body(
    name: str,
    python: str | None,
    requirements: Iterable[str],
    requirements_txt: str | None,
    network: bool,
) -> dict[str, Any]:
    return {
        "name": name,
        "python": python,
        "requirements": list(requirements),
        "requirements_txt": requirements_txt,
        "network": network,
    }


def backend_body(
    environment: str,
    type: str,
    token: str | None,
    port: int | None,
    bind_address: str | None,
    limits: "Limits | Mapping[str, Any] | None",
    options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if isinstance(limits, Limits):
        limits = {f.name: getattr(limits, f.name) for f in fields(Limits)}
    if limits is not None:
        limits = {k: v for k, v in limits.items() if v is not None} or None
    return {
        "environment": environment,
        "type": type,
        "token": token,
        "port": port,
        "bind_address": bind_address,
        "limits": limits,
        "options": dict(options) if options else None,
    }


# -- replies to results and errors ----------------------------------------------------------


def error_of(req: Request, status: int, body: bytes) -> BeepHostError:
    """The exception for a non-2xx reply, chained to an :class:`ErrorReply`.

    The controller answers ``{"error": {code, message, data}}``, decoded by the one
    table (code ``conflict`` is :class:`Conflict`). Older controllers sent a conflict as
    409 with code ``invalid_request``: that is :class:`Conflict` too. A reply without an
    error object is mapped from its status: 409 is :class:`Conflict`; a route an older
    controller lacks is :class:`NotFound` with ``data["route"]``; anything else (a
    proxy's page) as on the SDK's HTTP transport.
    """
    decoded = _object(body)
    payload = decoded.get("error") if decoded else None
    if not isinstance(payload, dict) or not isinstance(payload.get("code"), str):
        payload = None
    if status == 409 and (payload is None or payload["code"] == "invalid_request"):
        # No code, or a controller older than the `conflict` code.
        payload = payload or {"code": "invalid_request", "message": "conflict"}
        data = payload.get("data")
        error: BeepHostError = Conflict(
            str(payload.get("message", "")), data if isinstance(data, dict) else {}
        )
        error.__cause__ = ErrorReply("http", payload, status)
        return error
    if payload is None and status in (404, 405):
        route = f"{req.method} {req.path.split('?')[0]}"
        message = (
            f"the controller does not serve {route} (HTTP {status}): "
            "is it older than this client?"
        )
        error = NotFound(message, {"status": status, "route": route})
        error.__cause__ = ErrorReply(
            "http", {"code": "not_found", "message": message}, status
        )
        return error
    return _http11.error_of(status, body)


def _object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def json_body(req: Request, body: bytes) -> Any:
    """The decoded JSON of a 2xx reply.

    Raises:
        InternalError: The body is not JSON.
    """
    try:
        return json.loads(body)
    except ValueError as exc:
        raise InternalError(
            f"{req.method} {req.path}: a success reply whose body is not JSON"
        ) from exc


T = TypeVar("T")


def _kwargs(cls: type[Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    # Fields a newer controller adds are ignored; missing ones take their defaults.
    return {f.name: raw[f.name] for f in fields(cls) if f.name in raw}


def _expect_object(raw: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise InternalError(
            f"expected a JSON object for {what}, got {type(raw).__name__}"
        )
    return raw


def _expect_list(raw: Any, what: str) -> list[Any]:
    if not isinstance(raw, list):
        raise InternalError(f"expected a JSON list of {what}, got {type(raw).__name__}")
    return raw


def runtime(raw: Any) -> Runtime:
    return Runtime(**_kwargs(Runtime, _expect_object(raw, "a runtime")))


def environment(raw: Any) -> Environment:
    values = _kwargs(Environment, _expect_object(raw, "an environment"))
    values["requirements"] = tuple(values.get("requirements") or ())
    return Environment(**values)


def job(raw: Any) -> Job:
    return Job(**_kwargs(Job, _expect_object(raw, "a job")))


def log_line(raw: Any) -> LogLine:
    raw = _expect_object(raw, "a log line")
    return LogLine(int(raw["seq"]), str(raw["line"]))


def job_log_page(raw: Any) -> JobLogPage:
    raw = _expect_object(raw, "a job log page")
    lines = tuple(log_line(item) for item in _expect_list(raw.get("lines"), "lines"))
    return JobLogPage(job(raw.get("job")), lines, int(raw.get("next", -1)))


def backend(raw: Any) -> Backend:
    values = _kwargs(Backend, _expect_object(raw, "a backend"))
    limits = values.get("limits")
    values["limits"] = Limits(**_kwargs(Limits, limits)) if limits else Limits()
    return Backend(**values)


def backend_connection(raw: Any) -> BackendConnection:
    raw = _expect_object(raw, "a backend connection")
    token = raw.get("token")
    return BackendConnection(str(raw["url"]), str(token) if token else None)


def many(decode: Callable[[Any], T], raw: Any, what: str) -> list[T]:
    return [decode(item) for item in _expect_list(raw, what)]


def stream_item(line: bytes) -> LogLine | Job | None:
    """One NDJSON line of a job's log stream; ``None`` for a kind this client ignores.

    Raises:
        InternalError: The line is not a JSON object.
    """
    message = _object(line)
    if message is None:
        if not line.strip():
            return None
        raise InternalError("the controller sent a log line that is not a JSON object")
    if isinstance(message.get("job"), dict):
        return job(message["job"])
    if "seq" in message and "line" in message:
        return log_line(message)
    return None


def backend_reached(found: Backend, wanted: str) -> bool:
    """Whether a wait for ``wanted`` is over.

    Raises:
        Unavailable: The backend ended (``exited``, ``stopped``) short of ``wanted``.
    """
    if found.status == wanted:
        return True
    if found.status in BACKEND_FINISHED:
        reason = f": {found.reason}" if found.reason else ""
        raise Unavailable(
            f"backend {found.id} is {found.status}{reason}",
            {"backend": found.id, "status": found.status, "reason": found.reason},
        )
    return False
