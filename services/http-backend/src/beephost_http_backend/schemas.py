"""Request bodies, stream lines and the error envelope of the HTTP API.

Result bodies are the protocol's result models (``beephost_protocol.models``); only the
shapes that exist on HTTP alone are defined here. Bodies ignore unknown fields, like the
protocol's commands, so newer clients can talk to older servers.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from beephost_protocol import DEFAULT_SESSION
from beephost_protocol.models import (
    ARGS_DOC,
    KWARGS_DOC,
    ErrorBody,
    ExecResult,
    Output,
)

SessionId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        description="Session to run in; 'default' always exists.",
    ),
]
Timeout = Annotated[
    float | None,
    Field(
        gt=0,
        description="Deadline in seconds, capped by the server's maximum; overrides "
        "the X-Beephost-Timeout header.",
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ExecRequest(_Body):
    """Run statements; a trailing expression's value is returned, as in a notebook."""

    code: str = Field(description="Python statements, run in the session's namespace.")
    session: SessionId = DEFAULT_SESSION
    timeout: Timeout = None


class SessionOpenRequest(_Body):
    """Open a session with its own worker process."""

    ttl: float | None = Field(
        None, gt=0, description="Idle seconds before expiry; capped by the server."
    )


#: Python identifiers joined by "." (or ":" before the attribute path).
DOTTED_NAME = r"^[^\W\d]\w*(?:[.:][^\W\d]\w*)*$"


class ObjectCreateRequest(_Body):
    """Call a dotted callable path (``collections.Counter``) and keep the result."""

    target: str = Field(
        min_length=1,
        description="Dotted path of a callable: module attribute, builtin or a name "
        "in the session's namespace.",
        # Documented only: the worker checks it, with the same error on every transport.
        json_schema_extra={"pattern": DOTTED_NAME},
    )
    args: list[Any] = Field(default_factory=list, description=ARGS_DOC)
    kwargs: dict[str, Any] = Field(default_factory=dict, description=KWARGS_DOC)
    timeout: Timeout = None


class SetAttributeRequest(_Body):
    """The new value of an attribute."""

    value: Any = Field(description="The new value (a wire value; null is a value).")
    timeout: Timeout = None


class CallRequest(_Body):
    """Call a handle's object, or one of its methods."""

    method: str | None = Field(
        None, description="Method name; null calls the object itself."
    )
    args: list[Any] = Field(default_factory=list, description=ARGS_DOC)
    kwargs: dict[str, Any] = Field(default_factory=dict, description=KWARGS_DOC)
    timeout: Timeout = None


class ReleaseRequest(_Body):
    """Handles to forget; unknown ids are ignored, so a release is safe to repeat."""

    handles: list[str] = Field(description="Handle ids to forget.")


class ErrorResponse(_Body):
    """Body of every error response; the status comes from the code."""

    error: ErrorBody


class Liveness(_Body):
    """The process is up and its event loop answers."""

    status: Literal["ok"] = "ok"


class Readiness(_Body):
    """A worker answers and the server is not draining."""

    ready: Literal[True] = True


class StreamEvent(_Body):
    """Output of the running code, as it was produced: text, or one rich output."""

    event: Literal["stdout", "stderr", "display"]
    data: str | Output = Field(
        description="A chunk of text for stdout/stderr; one Output for display."
    )


class StreamResult(_Body):
    """The last line of a stream that succeeded."""

    result: ExecResult


class StreamError(_Body):
    """The last line of a stream that failed after its first output."""

    error: ErrorBody


class StreamLine(RootModel[StreamEvent | StreamResult | StreamError]):
    """One line of ``application/x-ndjson``: events, then one result or error line."""
