"""The controller REST API without I/O: requests, decoding, error mapping.

The controller clients (``_async/_controller.py`` and its generated twin) do the I/O; everything it
decides (which request carries a call, how a reply becomes a result type or an
exception, when a job or backend wait is over) lives here and is unit-tested with
bytes and dicts.
"""

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

# By module: the one list of these names is the public one, in controller.py.
from beephost_client import _controller_types as types
from beephost_client._exceptions import ErrorReply
from beephost_client._transports import _http11
from beephost_client._transports.controller import Request
from beephost_protocol.errors import (
    BeepHostError,
    Conflict,
    InternalError,
    NotFound,
    Unavailable,
)

# -- requests and responses -----------------------------------------------------------------


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
    egress: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "python": python,
        "requirements": list(requirements),
        "requirements_txt": requirements_txt,
        "network": network,
        "egress": dict(egress) if egress is not None else None,
    }


def limits_json(
    limits: types.Limits | Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """Limits as the API takes them: only the ones set (None: the defaults)."""
    if isinstance(limits, types.Limits):
        limits = {f.name: getattr(limits, f.name) for f in fields(types.Limits)}
    if limits is None:
        return None
    return {k: v for k, v in limits.items() if v is not None} or None


def backend_body(
    environment: str,
    type: str,
    token: str | None,
    port: int | None,
    bind_address: str | None,
    limits: types.Limits | Mapping[str, Any] | None,
    options: Mapping[str, Any] | None,
    ttl: float | None = None,
    idle_timeout: float | None = None,
    egress: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "environment": environment,
        "type": type,
        "token": token,
        "port": port,
        "bind_address": bind_address,
        "limits": limits_json(limits),
        "options": dict(options) if options else None,
        "ttl": ttl,
        "idle_timeout": idle_timeout,
        "egress": dict(egress) if egress is not None else None,
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
    decoded = _http11.json_object(body)
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


def runtime(raw: Any) -> types.Runtime:
    return types.Runtime(**_kwargs(types.Runtime, _expect_object(raw, "a runtime")))


def environment(raw: Any) -> types.Environment:
    values = _kwargs(types.Environment, _expect_object(raw, "an environment"))
    values["requirements"] = tuple(values.get("requirements") or ())
    values["egress"] = egress(values.get("egress"))
    return types.Environment(**values)


def egress(raw: Any) -> types.Egress:
    """A policy in effect (an older controller's reply has none: ``none``)."""
    if not raw:
        return types.Egress()
    raw = _expect_object(raw, "an egress policy")
    allow = tuple(
        _expect_object(item, "an egress entry")
        for item in _expect_list(raw.get("allow") or [], "egress entries")
    )
    return types.Egress(str(raw.get("mode", "none")), allow)


def egress_refusals(raw: Any) -> list[types.EgressRefusal]:
    """The refusals of a backend's egress report (``GET .../egress``)."""
    report = _expect_object(raw, "an egress report")
    return [
        types.EgressRefusal(
            **_kwargs(types.EgressRefusal, _expect_object(item, "a refusal"))
        )
        for item in _expect_list(report.get("refusals") or [], "refusals")
    ]


def secret_path(name: str) -> str:
    return f"/api/v1/secrets/{_q(name)}"


def secret(raw: Any) -> types.Secret:
    return types.Secret(**_kwargs(types.Secret, _expect_object(raw, "a secret")))


def image(raw: Any) -> types.Image:
    values = _kwargs(types.Image, _expect_object(raw, "an image"))
    for name in ("tags", "environments"):
        values[name] = tuple(_expect_list(values.get(name) or [], name))
    return types.Image(**values)


def images(raw: Any, key: str) -> list[types.Image]:
    """The images of a listing (``images``) or a prune's report (``removed``)."""
    return [
        image(item) for item in _expect_list(_expect_object(raw, key).get(key), key)
    ]


def job(raw: Any) -> types.Job:
    return types.Job(**_kwargs(types.Job, _expect_object(raw, "a job")))


def log_line(raw: Any) -> types.LogLine:
    raw = _expect_object(raw, "a log line")
    return types.LogLine(int(raw["seq"]), str(raw["line"]))


def job_log_page(raw: Any) -> types.JobLogPage:
    raw = _expect_object(raw, "a job log page")
    lines = tuple(log_line(item) for item in _expect_list(raw.get("lines"), "lines"))
    return types.JobLogPage(job(raw.get("job")), lines, int(raw.get("next", -1)))


def backend(raw: Any) -> types.Backend:
    values = _kwargs(types.Backend, _expect_object(raw, "a backend"))
    values["limits"] = _limits(values.get("limits"))
    values["egress"] = egress(values.get("egress"))
    return types.Backend(**values)


def _limits(raw: Any) -> types.Limits:
    return types.Limits(**_kwargs(types.Limits, raw)) if raw else types.Limits()


def pool(raw: Any) -> types.Pool:
    values = _kwargs(types.Pool, _expect_object(raw, "a pool"))
    values["limits"] = _limits(values.get("limits"))
    return types.Pool(**values)


def pool_body(
    size: int,
    limits: types.Limits | Mapping[str, Any] | None,
    options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return {
        "size": size,
        "limits": limits_json(limits),
        "options": dict(options) if options else None,
    }


def pool_path(environment: str, kind: str) -> str:
    return f"{environment_path(environment)}/pools/{_q(kind)}"


def backend_connection(raw: Any) -> types.BackendConnection:
    raw = _expect_object(raw, "a backend connection")
    token = raw.get("token")
    return types.BackendConnection(str(raw["url"]), str(token) if token else None)


def installed_packages(raw: Any) -> list[types.InstalledPackage]:
    raw = _expect_object(raw, "the installed packages")
    return [
        types.InstalledPackage(
            **_kwargs(types.InstalledPackage, _expect_object(item, "a package"))
        )
        for item in _expect_list(raw.get("packages"), "packages")
    ]


def many(decode: Callable[[Any], T], raw: Any, what: str) -> list[T]:
    return [decode(item) for item in _expect_list(raw, what)]


def stream_item(line: bytes) -> types.LogLine | types.Job | None:
    """One NDJSON line of a job's log stream; ``None`` for a kind this client ignores.

    Raises:
        InternalError: The line is not a JSON object.
    """
    message = _http11.json_object(line)
    if message is None:
        if not line.strip():
            return None
        raise InternalError("the controller sent a log line that is not a JSON object")
    if isinstance(message.get("job"), dict):
        return job(message["job"])
    if "seq" in message and "line" in message:
        return log_line(message)
    return None


def backend_reached(found: types.Backend, wanted: str) -> bool:
    """Whether a wait for ``wanted`` is over.

    Raises:
        Unavailable: The backend ended (``exited``, ``stopped``) short of ``wanted``.
    """
    if found.status == wanted:
        return True
    if found.status in types.BACKEND_FINISHED:
        reason = f": {found.reason}" if found.reason else ""
        raise Unavailable(
            f"backend {found.id} is {found.status}{reason}",
            {"backend": found.id, "status": found.status, "reason": found.reason},
        )
    return False
