"""Typed commands, results and envelopes: the one contract every transport carries.

A *command* is what a client asks of the execution core (``eval``, ``exec``, the object
operations, the session operations). Each command model names its wire ``type`` in
``COMMAND``. Transports decode their own framing into these models and hand them to the
core unchanged.
"""

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

PROTOCOL_VERSION = "1.0"
DEFAULT_SESSION = "default"


class _Model(BaseModel):
    # Unknown fields are ignored so that newer clients can talk to older servers.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Command(_Model):
    """Base of every command; ``COMMAND`` is its wire ``type``."""

    COMMAND: ClassVar[str] = ""


class SessionCommand(Command):
    """A command addressed to one session, with an optional per-request deadline."""

    session: str = Field(DEFAULT_SESSION, min_length=1, max_length=128)
    timeout: float | None = Field(
        None, gt=0, description="Seconds; capped by the server's maximum."
    )


class Evaluate(SessionCommand):
    """Evaluate one expression; ``locals`` are extra names visible to it only."""

    COMMAND: ClassVar[str] = "eval"
    expression: str
    locals: dict[str, Any] = Field(default_factory=dict)


class Execute(SessionCommand):
    """Run statements; a trailing expression's value is returned, as in a notebook."""

    COMMAND: ClassVar[str] = "exec"
    code: str
    stream: bool = Field(False, description="Deliver stdout/stderr as produced.")


class ObjectCreate(SessionCommand):
    """Call a dotted callable path (``collections.Counter``) and keep the result."""

    COMMAND: ClassVar[str] = "object.create"
    target: str = Field(min_length=1)
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ObjectGetAttr(SessionCommand):
    """Read an attribute of a handle's object."""

    COMMAND: ClassVar[str] = "object.get_attr"
    handle: str
    name: str = Field(min_length=1)


class ObjectSetAttr(SessionCommand):
    """Assign an attribute of a handle's object."""

    COMMAND: ClassVar[str] = "object.set_attr"
    handle: str
    name: str = Field(min_length=1)
    value: Any = None


class ObjectCall(SessionCommand):
    """Call a method of a handle's object, or the object itself when ``method`` is null."""

    COMMAND: ClassVar[str] = "object.call"
    handle: str
    method: str | None = None
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ObjectRelease(SessionCommand):
    """Forget handles; unknown ids are ignored so release is safe to repeat."""

    COMMAND: ClassVar[str] = "object.release"
    handles: list[str]


class ObjectList(SessionCommand):
    """List the session's live handles."""

    COMMAND: ClassVar[str] = "object.list"


class SessionInfo(SessionCommand):
    """Describe a session: CPython version, environment, packages, counters."""

    COMMAND: ClassVar[str] = "session.info"


class SessionOpen(Command):
    """Open a new session with its own worker process and namespace."""

    COMMAND: ClassVar[str] = "session.open"
    ttl: float | None = Field(
        None, gt=0, description="Idle seconds before expiry; capped by the server."
    )


class SessionClose(Command):
    """Close a session, killing its worker and releasing its handles."""

    COMMAND: ClassVar[str] = "session.close"
    session: str = Field(min_length=1, max_length=128)


class SessionList(Command):
    """List open sessions."""

    COMMAND: ClassVar[str] = "session.list"


class Interrupt(Command):
    """Raise KeyboardInterrupt in the code a session is running, if any."""

    COMMAND: ClassVar[str] = "interrupt"
    session: str = Field(DEFAULT_SESSION, min_length=1, max_length=128)


COMMANDS: dict[str, type[Command]] = {
    cls.COMMAND: cls
    for cls in (
        Evaluate,
        Execute,
        ObjectCreate,
        ObjectGetAttr,
        ObjectSetAttr,
        ObjectCall,
        ObjectRelease,
        ObjectList,
        SessionInfo,
        SessionOpen,
        SessionClose,
        SessionList,
        Interrupt,
    )
}


# Results. The core returns plain JSON-ready dicts of these shapes; the models document
# them (JSON Schema, OpenAPI) and let clients validate.


class HandleInfo(_Model):
    """A reference to a remote object; pass ``{"$handle": {"id": ...}}`` back as an argument."""

    id: str
    type: str
    repr: str


class ValueResult(_Model):
    """Result of eval, object.create, object.get_attr and object.call."""

    value: Any = None


class ExecResult(_Model):
    """Result of exec. ``*_dropped`` count bytes cut by the output limit."""

    stdout: str
    stderr: str
    value: Any = None
    has_value: bool = False
    stdout_dropped: int = 0
    stderr_dropped: int = 0


class EmptyResult(_Model):
    """Result of object.set_attr."""


class ReleaseResult(_Model):
    released: int


class HandleList(_Model):
    handles: list[HandleInfo]


class SessionOpened(_Model):
    session: str
    ttl: float


class SessionClosed(_Model):
    closed: bool


class SessionDescription(_Model):
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


class SessionListing(_Model):
    sessions: list[str]


class InterruptResult(_Model):
    interrupted: bool


class ErrorBody(_Model):
    """The transport-neutral error object."""

    code: str
    message: str
    data: dict[str, Any] = Field(default_factory=dict)


OutputStream = Literal["stdout", "stderr"]
