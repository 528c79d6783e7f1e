"""Client-side exceptions, added to the protocol's one taxonomy (beephost_protocol.errors).

Every error the SDK raises is a :class:`~beephost_protocol.errors.BeepHostError`; what
a transport observed is chained as ``__cause__``::

    BeepHostError
    ├── Unavailable
    │   ├── ConnectError        no connection could be made: the request was not sent
    │   └── ConnectionLost      the connection broke after sending: outcome unknown
    ├── InvalidRequest
    │   ├── InvalidArgument     a bad argument, refused before anything is sent
    │   └── UsageError          a closed client or session, a stream not read to its end
    └── InternalError
        └── BadReply            a reply the SDK cannot read (not the protocol's shape)

The client-side classes also derive from the built-in exception Python code expects
for that mistake (``InvalidArgument`` from ValueError and TypeError, ``UsageError``
from RuntimeError), so existing ``except ValueError:`` code keeps working.

    ErrorReply (not a BeepHostError): the raw error reply, set as ``__cause__`` of the
    exception raised for an error the server answered with (pipe and HTTP).
"""

from typing import Any

from beephost_protocol.errors import InternalError, InvalidRequest, Unavailable


class ConnectError(Unavailable):
    """No connection could be made (refused, no socket, handshake failed).

    The request was not sent, so retrying it is always safe.
    """


class ConnectionLost(Unavailable):
    """The connection broke after the request was sent; its outcome is unknown.

    Only operations that are safe to repeat are retried after this.
    """


class InvalidArgument(InvalidRequest, ValueError, TypeError):
    """An argument the SDK refuses before sending anything.

    A value nested too deeply or that cannot travel by value, a remote object of another
    session, a timeout that is not a finite number > 0, an unsupported URL. The
    underlying error (pydantic's, the encoder's) is its ``__cause__``.
    """


class UsageError(InvalidRequest, RuntimeError):
    """The call does not fit the object's state: the client or session is closed or
    not open, or a stream's result is asked for before the stream was read."""


class BadReply(InternalError):
    """A reply the SDK cannot read: not the protocol's shape (a proxy's error page, a
    server bug). The decoding error is its ``__cause__``."""


class ErrorReply(Exception):
    """An error reply as the transport received it; the ``__cause__`` of mapped errors.

    Args:
        transport: ``"pipe"``, ``"http"`` or ``"grpc"``.
        payload: The ``{code, message, data}`` object (empty if the reply had none).
        status: The HTTP status or gRPC status name, if the transport has one.
    """

    def __init__(
        self, transport: str, payload: dict[str, Any], status: int | str | None = None
    ) -> None:
        where = f" {status}" if status is not None else ""
        super().__init__(
            f"{transport}{where} error reply: {payload.get('code')}: {payload.get('message')}"
        )
        self.transport = transport
        self.payload = payload
        self.status = status
