"""Timeouts and the URL scheme to transport table."""

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar
from urllib.parse import urlsplit

from beephost_client._exceptions import InvalidArgument

if TYPE_CHECKING:
    from beephost_client._transports.base import AsyncBaseTransport, BaseTransport

_T_co = TypeVar("_T_co", covariant=True)


@dataclass(frozen=True, slots=True)
class Timeout:
    """The finite time limits every call runs under.

    Args:
        request: Default deadline of a request, in seconds. It is sent to the server,
            which stops the code when it passes (``ExecutionTimeout``).
        connect: Seconds to open a connection and finish its handshake.
        grace: Extra seconds the client waits past ``request`` for the server's own
            answer (the server may take its kill grace to stop the code) before it
            gives up on its side.

    Example::

        client = beephost_client.connect(url, timeout=Timeout(request=120))
        client.evaluate("slow()", timeout=600)  # one call, a longer deadline
    """

    request: float = 30.0
    connect: float = 5.0
    grace: float = 5.0

    def __post_init__(self) -> None:
        for name in ("request", "connect", "grace"):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise InvalidArgument(
                    f"Timeout.{name} must be a finite number > 0: {value!r}"
                )

    def wait(self, deadline: float) -> float:
        """How long the client waits for the reply to a request with ``deadline``."""
        return deadline + self.grace


DEFAULT_TIMEOUT = Timeout()


def as_timeout(timeout: "Timeout | float") -> Timeout:
    """Accept a Timeout or a number of seconds (the request deadline)."""
    if isinstance(timeout, Timeout):
        return timeout
    return Timeout(request=float(timeout))


# scheme -> transport kind. One table: the sync and async factories below read it.
SCHEMES: dict[str, str] = {
    "unix": "pipe",
    "http": "http",
    "https": "http",
    "http+unix": "http",
    "grpc": "grpc",
    "grpcs": "grpc",
    "grpc+unix": "grpc",
}


def transport_kind(url: str) -> str:
    """The transport (``pipe``, ``http`` or ``grpc``) that serves ``url``.

    Raises:
        ValueError: The URL has no scheme or one that no transport serves.
    """
    scheme = urlsplit(url).scheme.lower()
    try:
        return SCHEMES[scheme]
    except KeyError:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise InvalidArgument(
            f"unsupported URL {url!r}: expected one of {known}"
        ) from None


def unix_path(url: str) -> str:
    """The socket path of ``unix:///abs/path.sock`` (or ``unix:relative.sock``)."""
    parts = urlsplit(url)
    path = (parts.netloc + parts.path) if parts.netloc else parts.path
    if not path:
        raise InvalidArgument(f"no socket path in {url!r}")
    return path


class _TransportClass(Protocol[_T_co]):
    """What the scheme table builds: a transport class, called with its address."""

    def __call__(
        self, address: str, /, *, token: str | None, timeout: Timeout
    ) -> _T_co: ...


def _transport_classes(
    url: str,
) -> tuple[
    str, "_TransportClass[BaseTransport]", "_TransportClass[AsyncBaseTransport]"
]:
    """The address for ``url`` and its blocking and asyncio transport classes.

    They are imported when first needed: the gRPC ones need the [grpc] extra.
    """
    kind = transport_kind(url)
    if kind == "pipe":
        from beephost_client._transports.pipe import AsyncPipeTransport, PipeTransport

        return unix_path(url), PipeTransport, AsyncPipeTransport
    if kind == "http":
        from beephost_client._transports.http import AsyncHTTPTransport, HTTPTransport

        return url, HTTPTransport, AsyncHTTPTransport
    from beephost_client._transports.grpc import AsyncGRPCTransport, GRPCTransport

    return url, GRPCTransport, AsyncGRPCTransport


def make_transport(url: str, *, token: str | None, timeout: Timeout) -> "BaseTransport":
    """Build the blocking transport for ``url`` from the scheme table."""
    address, blocking, _ = _transport_classes(url)
    return blocking(address, token=token, timeout=timeout)


def make_async_transport(
    url: str, *, token: str | None, timeout: Timeout
) -> "AsyncBaseTransport":
    """Build the asyncio transport for ``url`` from the scheme table."""
    address, _, asynchronous = _transport_classes(url)
    return asynchronous(address, token=token, timeout=timeout)
