"""``connect``: a blocking client for a URL, in one call.

GENERATED from ``_async/_connect.py`` by ``packages/client/scripts/unasync.py``: do not
edit (the docstring there describes both).
"""

from beephost_client._timeout import DEFAULT_TIMEOUT, Timeout
from beephost_client._transports.base import BaseTransport

from ._client import Client


def connect(
    url: str | None = None,
    *,
    token: str | None = None,
    timeout: Timeout | float = DEFAULT_TIMEOUT,
    transport: BaseTransport | None = None,
) -> Client:
    """A client for the backend at ``url``, for blocking code; connections open on
    first use.

    Args:
        url: ``unix:///path/pipe.sock``, ``http://host:port``, ``https://...``,
            ``grpc://host:port`` (gRPC needs ``beephost-client[grpc]``).
        token: The backend's token, if it has one.
        timeout: Default time limits: a :class:`Timeout`, or seconds for the deadline.
        transport: A transport to use instead of the URL's (e.g. ``MockTransport``).

    Returns:
        The :class:`Client`; close it, or use it in ``with``.

    Raises:
        ValueError: The URL's scheme is not supported.

    Example::

        with beephost_client.connect("unix:///tmp/beephost/pipe.sock") as client:
            print(client.evaluate("1 + 1"))
    """
    return Client(url, token=token, timeout=timeout, transport=transport)
