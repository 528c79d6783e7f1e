"""The URL scheme to transport table."""

from typing import TYPE_CHECKING, Protocol, TypeVar
from urllib.parse import urlsplit

from beephost_client._exceptions import InvalidArgument
from beephost_client._timeout import Timeout

if TYPE_CHECKING:
    from beephost_client._transports.base import AsyncBaseTransport, BaseTransport

_T_co = TypeVar("_T_co", covariant=True)


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
