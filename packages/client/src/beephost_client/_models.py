"""Result types the client returns: execution results, output chunks, session details."""

from dataclasses import dataclass, fields
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class OutputChunk:
    """A piece of output of a streamed execution, in the order it was produced.

    Attributes:
        stream: ``"stdout"`` or ``"stderr"``.
        data: The text; chunk boundaries are arbitrary.
    """

    stream: Literal["stdout", "stderr"]
    data: str


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What ``execute`` returns.

    Attributes:
        stdout: Captured standard output (empty when it was streamed).
        stderr: Captured standard error (empty when it was streamed).
        value: Value of a trailing expression statement, else ``None``; remote
            objects come as proxies.
        has_value: Whether the code ended with an expression statement.
        stdout_dropped: Bytes of stdout cut by the server's output limit.
        stderr_dropped: Bytes of stderr cut by the server's output limit.
    """

    stdout: str
    stderr: str
    value: Any = None
    has_value: bool = False
    stdout_dropped: int = 0
    stderr_dropped: int = 0


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """What ``info`` returns: a session's interpreter and counters.

    Attributes:
        session: The session's id.
        environment: Name of the environment the server runs code in.
        python_version: Interpreter version, e.g. ``3.11.7``.
        implementation: Interpreter implementation, e.g. ``CPython``.
        executable: Path of the worker's interpreter.
        pid: Process id of the session's worker.
        packages: Installed distributions, name to version.
        handles: Live remote objects (handles) in the session.
        requests: Requests run in the session so far.
        created_at: Creation time, Unix seconds.
        idle_seconds: Seconds since the last request ended.
        ttl: Idle seconds before expiry; ``None`` for ``default``.
    """

    session: str
    environment: str
    python_version: str
    implementation: str
    executable: str
    pid: int
    packages: dict[str, str]
    handles: int
    requests: int
    created_at: float
    idle_seconds: float
    ttl: float | None


_DESCRIPTION_FIELDS = tuple(f.name for f in fields(SessionDescription))


def session_description(raw: dict[str, Any]) -> SessionDescription:
    """Build from a ``session.info`` result, ignoring fields a newer server adds."""
    values: dict[str, Any] = {name: raw.get(name) for name in _DESCRIPTION_FIELDS}
    values["packages"] = dict(values["packages"] or {})
    if not values["ttl"]:  # gRPC has no null: 0 means "never expires"
        values["ttl"] = None
    return SessionDescription(**values)
