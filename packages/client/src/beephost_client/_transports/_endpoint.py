"""Where and how an HTTP transport connects: the URL parsed once, headers, error texts.

Shared by the backend's HTTP transport and the controller's (``_httpio`` holds their
connections); no I/O.
"""

import importlib.metadata
import ssl
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from beephost_client._exceptions import ConnectError, ConnectionLost, InvalidArgument
from beephost_client._transports import _http11
from beephost_protocol.errors import BeepHostError, ExecutionTimeout, InternalError

E = TypeVar("E", bound=BeepHostError)

try:
    _VERSION = importlib.metadata.version("beephost-client")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source checkout
    _VERSION = "0"
USER_AGENT = f"beephost-client/{_VERSION}"
MAX_STREAM_LINE = 256 << 20


def unix_socket_path(url: str) -> str | None:
    """The socket path of a ``unix:///abs/path`` URL; None for any other scheme.

    Raises:
        InvalidArgument: A ``unix:`` URL that does not name an absolute path.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("unix", "http+unix"):
        return None
    if parts.netloc or not parts.path.startswith("/") or parts.query:
        raise InvalidArgument(f"not a {scheme}:///absolute/socket/path URL: {url!r}")
    return unquote(parts.path)


class Endpoint:
    """Where and how to connect, parsed once from the URL.

    Args:
        url: An ``http(s)://host[:port][/prefix]`` URL, ``http+unix:///abs/path.sock``
            (HTTP over that Unix socket) or, with ``unix=True``, also
            ``unix:///abs/path.sock``.
        token: Sent as ``Authorization: Bearer``.
        lease: Sent in the lease header (the backend's HTTP API).
        unix: Whether a ``unix:///`` URL is accepted.

    Raises:
        InvalidArgument: A URL of another kind.
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        lease: str | None = None,
        *,
        unix: bool = False,
    ) -> None:
        self.url = url
        over_unix = unix or urlsplit(url).scheme.lower() == "http+unix"
        self.socket_path = unix_socket_path(url) if over_unix else None
        if self.socket_path is not None:
            # HTTP/1.1 needs a Host header; over a Unix socket it names nothing.
            url = "http://localhost"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgument(f"not an http(s) URL with a host: {url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        default_port = self.port == (443 if self.tls else 80)
        self.host_header = (
            parts.netloc.rpartition("@")[2] if not default_port else self.host
        )
        self.headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if lease:
            self.headers[_http11.LEASE_HEADER] = lease
        self.ssl_context = ssl.create_default_context() if self.tls else None

    def headers_for(self, route: _http11.Route) -> dict[str, str]:
        if route.deadline is None and not route.headers:
            return self.headers
        headers = {**self.headers, **dict(route.headers)}
        if route.deadline is not None:
            headers[_http11.TIMEOUT_HEADER] = repr(route.deadline)
        return headers

    def upload_head(self, target: str, size: int | None) -> bytes:
        """The head of a PUT of a file's bytes to ``target`` (see _http11.upload_head)."""
        headers = {k: v for k, v in self.headers.items() if k != "Content-Type"}
        return _http11.upload_head(target, self.host_header, headers, size)

    def request_bytes(self, route: _http11.Route) -> bytes:
        # A GET goes without a body; any other method sends one, empty if need be.
        body = route.body if route.body is not None or route.method == "GET" else b""
        return _http11.request_bytes(
            route.method, route.path, self.host_header, self.headers_for(route), body
        )

    def connect_error(self, exc: BaseException) -> ConnectError:
        return self._chained(ConnectError, f"cannot connect to {self.url}", exc)

    def lost(self, exc: BaseException) -> ConnectionLost:
        return self._chained(ConnectionLost, f"connection to {self.url} lost", exc)

    def _chained(self, cls: type[E], text: str, exc: BaseException) -> E:
        error = cls(f"{text}: {exc or type(exc).__name__}", {"url": self.url})
        error.__cause__ = exc
        return error

    def bad_reply(self, exc: _http11.ProtocolError) -> InternalError:
        error = InternalError(f"bad HTTP response from {self.url}: {exc}")
        error.__cause__ = exc
        return error


def timed_out(
    route: _http11.Route, waited: float, exc: BaseException
) -> ExecutionTimeout:
    """The client-side timeout of a request (``data["client_side"]`` is true)."""
    error = ExecutionTimeout(
        f"no reply to {route.method} {route.path} within {waited:.3g}s (client-side limit)",
        {"client_side": True},
    )
    error.__cause__ = exc
    return error
