"""Client-side exceptions, added to the protocol's one taxonomy (beephost_protocol.errors).

Every error the SDK raises is a :class:`~beephost_protocol.errors.BeepHostError`; what
a transport observed is chained as ``__cause__``::

    BeepHostError
    └── Unavailable
        ├── ConnectError        no connection could be made: the request was not sent
        └── ConnectionLost      the connection broke after sending: outcome unknown

    ErrorReply (not a BeepHostError): the raw error reply, set as ``__cause__`` of the
    exception raised for an error the server answered with (pipe and HTTP).
"""

from typing import Any

from beephost_protocol.errors import Unavailable


class ConnectError(Unavailable):
    """No connection could be made (refused, no socket, handshake failed).

    The request was not sent, so retrying it is always safe.
    """


class ConnectionLost(Unavailable):
    """The connection broke after the request was sent; its outcome is unknown.

    Only operations that are safe to repeat are retried after this.
    """


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
