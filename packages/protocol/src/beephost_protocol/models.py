"""Typed commands, results and envelopes: the one contract every transport carries.

A *command* is what a client asks of the execution core (``eval``, ``exec``, the object
operations, the session operations). Each command model names its wire ``type`` in
``COMMAND``. Transports decode their own framing into these models and hand them to the
core unchanged.
"""

from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, Field

from beephost_protocol import files
from beephost_protocol._base import Command as Command
from beephost_protocol._base import _Model

PROTOCOL_VERSION = "1.0"
DEFAULT_SESSION = "default"
#: Deepest nesting of lists and objects in a wire value a command may carry: the
#: worker decodes values recursively, and a deeper one would end in RecursionError.
MAX_VALUE_DEPTH = 200

_Value = TypeVar("_Value")
_Values = TypeVar("_Values", list[Any], dict[str, Any])


def _check_depth(value: Any) -> None:
    """Refuse ``value`` if its lists and objects nest deeper than MAX_VALUE_DEPTH,
    or if it holds a malformed ``$handle``."""
    if not isinstance(value, dict | list):
        return
    # Only containers are queued: a list of a million numbers is one pass, no tuples.
    pending: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_VALUE_DEPTH:
            raise ValueError(f"a value nested deeper than {MAX_VALUE_DEPTH} levels")
        if isinstance(item, list):
            children: Any = item
        elif len(item) != 1:
            children = item.values()
        elif "$handle" in item:
            _check_handle(item["$handle"])
            continue
        elif isinstance(inner := item.get("$dict"), dict):
            # The object inside `$dict` is plain (its keys are no tags): only its
            # values are values, one level further down.
            if depth + 1 > MAX_VALUE_DEPTH:
                raise ValueError(f"a value nested deeper than {MAX_VALUE_DEPTH} levels")
            children, depth = inner.values(), depth + 1
        else:
            children = item.values()
        pending.extend(
            (child, depth + 1) for child in children if isinstance(child, dict | list)
        )


def _check_handle(inner: Any) -> None:
    # A made-up id would be `not_found`; a malformed reference is the sender's error.
    if not isinstance(inner, dict) or not isinstance(inner.get("id"), str):
        raise ValueError(
            'a $handle must be {"$handle": {"id": "<handle id>"}}'
            " with the id as a string"
        )


def _value_within_depth(value: _Value) -> _Value:
    _check_depth(value)
    return value


def _values_within_depth(values: _Values) -> _Values:
    # ``locals``, ``args`` and ``kwargs`` hold values; they are not one themselves.
    for item in values.values() if isinstance(values, dict) else values:
        _check_depth(item)
    return values


# Wire values (see values.md) in commands: any JSON, nested at most MAX_VALUE_DEPTH deep.
WireValue = Annotated[Any, AfterValidator(_value_within_depth)]
WireArgs = Annotated[list[Any], AfterValidator(_values_within_depth)]
WireNames = Annotated[dict[str, Any], AfterValidator(_values_within_depth)]


class SessionCommand(Command):
    """A command addressed to one session, with an optional per-request deadline."""

    session: str = Field(
        DEFAULT_SESSION,
        min_length=1,
        max_length=128,
        description="Session to run in; 'default' always exists.",
    )
    timeout: float | None = Field(
        None, gt=0, description="Seconds; capped by the server's maximum."
    )


class Evaluate(SessionCommand):
    """Evaluate one expression; ``locals`` are extra names visible to it only."""

    COMMAND: ClassVar[str] = "eval"
    expression: str = Field(description="One Python expression.")
    locals: WireNames = Field(
        default_factory=dict,
        description="Extra names (wire values) visible to this expression only.",
    )


class Execute(SessionCommand):
    """Run statements; a trailing expression's value is returned, as in a notebook."""

    COMMAND: ClassVar[str] = "exec"
    code: str = Field(description="Python statements, run in the session's namespace.")
    stream: bool = Field(False, description="Deliver stdout/stderr as produced.")


# A call's arguments, as object.create and object.call (and the HTTP bodies) document them.
ARGS_DOC = "Positional arguments (wire values)."
KWARGS_DOC = "Keyword arguments (wire values)."


class ObjectCreate(SessionCommand):
    """Call a dotted callable path (``collections.Counter``) and keep the result."""

    COMMAND: ClassVar[str] = "object.create"
    target: str = Field(
        min_length=1,
        description="Dotted path of a callable: module attribute, builtin or a name "
        "in the session's namespace.",
    )
    args: WireArgs = Field(default_factory=list, description=ARGS_DOC)
    kwargs: WireNames = Field(default_factory=dict, description=KWARGS_DOC)


class ObjectGetAttr(SessionCommand):
    """Read an attribute of a handle's object."""

    COMMAND: ClassVar[str] = "object.get_attr"
    handle: str = Field(description="Handle id, from a '$handle' value.")
    name: str = Field(min_length=1, description="Attribute name.")


class ObjectSetAttr(SessionCommand):
    """Assign an attribute of a handle's object."""

    COMMAND: ClassVar[str] = "object.set_attr"
    handle: str = Field(description="Handle id, from a '$handle' value.")
    name: str = Field(min_length=1, description="Attribute name.")
    value: WireValue = Field(None, description="The new value (a wire value).")


class ObjectCall(SessionCommand):
    """Call a method of a handle's object, or the object itself when ``method`` is null."""

    COMMAND: ClassVar[str] = "object.call"
    handle: str = Field(description="Handle id, from a '$handle' value.")
    method: str | None = Field(
        None, description="Method name; null calls the object itself."
    )
    args: WireArgs = Field(default_factory=list, description=ARGS_DOC)
    kwargs: WireNames = Field(default_factory=dict, description=KWARGS_DOC)


class ObjectRelease(SessionCommand):
    """Forget handles; unknown ids are ignored so release is safe to repeat."""

    COMMAND: ClassVar[str] = "object.release"
    handles: list[str] = Field(description="Handle ids to forget.")


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
    session: str = Field(
        min_length=1,
        max_length=128,
        description="Session to close; closing 'default' resets it.",
    )


class SessionList(Command):
    """List open sessions."""

    COMMAND: ClassVar[str] = "session.list"


class Interrupt(Command):
    """Raise KeyboardInterrupt in the code a session is running, if any."""

    COMMAND: ClassVar[str] = "interrupt"
    session: str = Field(
        DEFAULT_SESSION,
        min_length=1,
        max_length=128,
        description="Session whose running request to interrupt.",
    )


class LeaseRenew(Command):
    """Keep a lease alive: the objects it owns in ``default`` stay.

    HTTP and gRPC only (not a pipe command: there the connection owns them); see
    docs/protocol/http.md, "Leases".
    """

    COMMAND: ClassVar[str] = "lease.renew"
    lease: str = Field(description="The lease id: 16 to 128 of A-Z a-z 0-9 _ -.")


class LeaseRelease(Command):
    """End a lease now: release the objects it owns in ``default``."""

    COMMAND: ClassVar[str] = "lease.release"
    lease: str = Field(description="The lease id: 16 to 128 of A-Z a-z 0-9 _ -.")


# The pipe's commands (lease.* travel on HTTP and gRPC only).
_CORE_COMMANDS: tuple[type[Command], ...] = (
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
COMMANDS: dict[str, type[Command]] = {
    cls.COMMAND: cls for cls in (*_CORE_COMMANDS, *files.FILE_COMMANDS)
}


# Results. The core returns plain JSON-ready dicts of these shapes; the models document
# them (JSON Schema, OpenAPI) and let clients validate.


class HandleInfo(_Model):
    """A reference to a remote object; pass ``{"$handle": {"id": ...}}`` back as an argument."""

    id: str = Field(description="Opaque id, unique within the session.")
    type: str = Field(description="Qualified class name, e.g. collections.Counter.")
    repr: str = Field(description="repr() of the object, cut to 240 characters.")


class ValueResult(_Model):
    """Result of eval, object.create, object.get_attr and object.call."""

    value: Any = Field(
        None, description="The value; objects that are not data come as '$handle'."
    )


OutputType = Literal["display_data", "execute_result"]


class Output(_Model):
    """One rich output, in Jupyter's shape: a MIME bundle from ``display()``, a plot,
    or the rich representation of the code's last value."""

    output_type: OutputType = Field(
        description="'display_data' (display(), figures) or 'execute_result' (the "
        "trailing expression's value, when it has more than text/plain)."
    )
    data: dict[str, Any] = Field(
        description="MIME type to data: text for text types, base64 text for "
        "image/png and image/jpeg, a JSON value for application/json. text/plain is "
        "always there."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Per MIME type details, e.g. {'image/png': {'width': 640, 'height': "
        "480}}; 'dropped' maps each MIME type left out by the size limits to its size.",
    )


class ExecResult(_Model):
    """Result of exec. ``*_dropped`` count bytes cut by the output limit.

    ``outputs`` and ``outputs_dropped`` are present only when the code displayed
    something (or something was cut): a plain result is unchanged.
    """

    stdout: str = Field(
        description="Captured standard output; empty when it was streamed."
    )
    stderr: str = Field(
        description="Captured standard error; empty when it was streamed."
    )
    value: Any = Field(None, description="Value of a trailing expression statement.")
    has_value: bool = Field(
        False, description="Whether the code ended with an expression statement."
    )
    stdout_dropped: int = Field(0, description="Bytes of stdout over the limit.")
    stderr_dropped: int = Field(0, description="Bytes of stderr over the limit.")
    outputs: list[Output] = Field(
        default_factory=list,
        description="Rich outputs in order (display(), figures, then the value's); "
        "empty when they were streamed as 'display' events.",
    )
    outputs_dropped: int = Field(
        0, description="Bytes of rich output left out by the display size limits."
    )


class EmptyResult(_Model):
    """Result of object.set_attr."""


class ReleaseResult(_Model):
    """Result of object.release."""

    released: int = Field(description="How many of the ids were live handles.")


class LeaseRenewed(_Model):
    """Result of lease.renew: it lives ``ttl`` more seconds without another request."""

    lease: str = Field(description="The lease id.")
    ttl: float = Field(description="Seconds it lives without a request or renewal.")
    handles: int = Field(description="Objects in 'default' it owns now.")


class LeaseReleased(_Model):
    """Result of lease.release: the objects it owned in 'default' are released."""

    lease: str = Field(description="The lease id.")
    released: int = Field(description="How many objects were released.")


class HandleList(_Model):
    """Result of object.list, oldest handle first."""

    handles: list[HandleInfo] = Field(description="The session's live handles.")


class SessionOpened(_Model):
    """Result of session.open."""

    session: str = Field(description="The new session's id.")
    ttl: float = Field(description="Idle seconds before it expires, as granted.")


class SessionClosed(_Model):
    """Result of session.close."""

    closed: bool = Field(description="Always true.")


class SessionDescription(_Model):
    """Result of session.info."""

    session: str = Field(description="The session's id.")
    environment: str = Field(description="Name of the environment it runs in.")
    python_version: str = Field(description="Interpreter version, e.g. 3.11.7.")
    implementation: str = Field(description="Interpreter implementation, CPython.")
    executable: str = Field(description="Path of the worker's interpreter.")
    pid: int = Field(description="Process id of the session's worker.")
    packages: dict[str, str] = Field(
        description="Installed distributions, name to version."
    )
    handles: int = Field(description="Live handles.")
    requests: int = Field(description="Requests run in the session so far.")
    created_at: float = Field(description="Creation time, Unix seconds.")
    idle_seconds: float = Field(description="Seconds since the last request ended.")
    ttl: float | None = Field(
        description="Idle seconds before expiry; null for 'default' (never expires)."
    )


class SessionListing(_Model):
    """Result of session.list."""

    sessions: list[str] = Field(description="Ids of open sessions, 'default' first.")


class InterruptResult(_Model):
    """Result of interrupt."""

    interrupted: bool = Field(
        description="Whether a running request was signalled; false if none ran."
    )


class ErrorBody(_Model):
    """The transport-neutral error object."""

    code: str = Field(description="An ErrorCode value.")
    message: str = Field(description="Human-readable, for people and logs.")
    data: dict[str, Any] = Field(
        default_factory=dict, description="Details; the fields depend on the code."
    )


OutputStream = Literal["stdout", "stderr"]
#: Events of a streamed exec: output text, or one rich output (``display``).
EventName = Literal["stdout", "stderr", "display"]
