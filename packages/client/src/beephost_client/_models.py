"""Result types the client returns: execution results, output chunks, session details.

Every reply is read through the protocol's result model for its command (:func:`parse`);
the public objects here are built from those typed models, never from reply dicts.
"""

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Generic, Literal, Self, TypeVar, overload

from pydantic import BaseModel, ValidationError

from beephost_client._exceptions import BadReply
from beephost_protocol import models as wire
from beephost_protocol.errors import validation_summary

_IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml")


@dataclass(frozen=True, slots=True)
class OutputChunk:
    """A piece of output of a streamed execution, in the order it was produced.

    Attributes:
        stream: ``"stdout"`` or ``"stderr"``.
        data: The text; chunk boundaries are arbitrary.
    """

    stream: Literal["stdout", "stderr"]
    data: str


_T = TypeVar("_T")


class _MimeData(property, Generic[_T]):
    """A read-only attribute of :class:`Output`: its data of one MIME type, or None.

    A property (so ``help()`` lists it as one) that mypy reads as ``_T | None``.
    """

    def __init__(self, mime: str, read: Callable[[Any], _T | None], doc: str) -> None:
        super().__init__(lambda output: read(output.data.get(mime)))
        self.__doc__ = doc  # property.__init__ keeps no doc= on a subclass (3.11)

    @overload
    def __get__(self, output: None, owner: type | None = None, /) -> Self: ...
    @overload
    def __get__(self, output: "Output", owner: type | None = None, /) -> _T | None: ...
    def __get__(self, output: object, owner: type | None = None, /) -> Any:
        return super().__get__(output, owner)


def _as_text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _as_bytes(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _text(mime: str) -> _MimeData[str]:
    return _MimeData(mime, _as_text, f"``{mime}``.")


def _decoded(mime: str) -> _MimeData[bytes]:
    return _MimeData(mime, _as_bytes, f"``{mime}``, decoded.")


@dataclass(frozen=True, slots=True)
class Output:
    """One rich output (a ``display()`` call, a plot, a table), in Jupyter's shape.

    Attributes:
        output_type: ``"display_data"``, or ``"execute_result"`` for the rich
            representation of the code's last value.
        data: MIME type to data, as sent: text, base64 text for ``image/png`` and
            ``image/jpeg``, a JSON value for ``application/json``.
        metadata: Details per MIME type (``{"image/png": {"width": 640, "height":
            480}}``); ``"dropped"`` maps MIME types left out by the size limits to
            their size.
    """

    output_type: str
    data: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)

    text = _text("text/plain")
    html = _text("text/html")
    markdown = _text("text/markdown")
    svg = _text("image/svg+xml")
    latex = _text("text/latex")
    png = _decoded("image/png")
    jpeg = _decoded("image/jpeg")

    @property
    def json(self) -> Any:
        """``application/json`` (``None`` if absent)."""
        return self.data.get("application/json")

    @property
    def is_image(self) -> bool:
        """Whether it holds a PNG, JPEG or SVG image."""
        return any(mime in self.data for mime in _IMAGE_MIMES)


_Reply = TypeVar("_Reply", bound=BaseModel)


def parse(model: type[_Reply], raw: Any) -> _Reply:
    """``raw`` read as the result model ``model``; fields a newer server adds are ignored.

    Raises:
        BadReply: ``raw`` is not in the model's shape (chained to pydantic's error).
    """
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = validation_summary(exc.errors(include_url=False), "reply")
        raise BadReply(
            f"the server's reply is not a {model.__name__}: {problems}"
        ) from exc


def output_from(output: wire.Output) -> Output:
    """The public :class:`Output` of a validated wire output."""
    return Output(output.output_type, dict(output.data), dict(output.metadata))


def output_of(raw: Any) -> Output:
    """Build from a wire output object (a ``display`` event, a proxy's bundle)."""
    return output_from(parse(wire.Output, raw))


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
        outputs: Rich outputs in order (``display()``, plots, the value's rich
            representation); a streamed run's too, gathered from its stream.
        outputs_dropped: Bytes of rich output left out by the server's size limits
            (each affected output names them in ``metadata["dropped"]``).
    """

    stdout: str
    stderr: str
    value: Any = None
    has_value: bool = False
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    outputs: list[Output] = field(default_factory=list)
    outputs_dropped: int = 0

    @property
    def images(self) -> list[Output]:
        """The outputs holding an image (PNG, JPEG or SVG), in order."""
        return [output for output in self.outputs if output.is_image]

    @property
    def html(self) -> str | None:
        """The first ``text/html`` of the outputs, e.g. a DataFrame's table."""
        return next((o.html for o in self.outputs if o.html is not None), None)

    @property
    def text(self) -> str | None:
        """Plain text of the main result: the rich result's ``text/plain``, else
        ``repr(value)``; ``None`` when the code ended with no expression."""
        for output in self.outputs:
            if output.output_type == "execute_result" and output.text is not None:
                return output.text
        return repr(self.value) if self.has_value else None


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


def session_description(result: wire.SessionDescription) -> SessionDescription:
    """Build from a validated ``session.info`` result."""
    values: dict[str, Any] = {
        name: getattr(result, name) for name in _DESCRIPTION_FIELDS
    }
    values["packages"] = dict(result.packages)
    values["ttl"] = result.ttl or None  # gRPC has no null: 0 means "never expires"
    return SessionDescription(**values)
