"""``connect`` and ``aconnect``: a client for a URL, in one call."""

from beephost_client._async._client import AsyncClient
from beephost_client._config import DEFAULT_TIMEOUT, Timeout
from beephost_client._sync._client import Client
from beephost_client._transports.base import AsyncBaseTransport, BaseTransport


def connect(
    url: str | None = None,
    *,
    token: str | None = None,
    timeout: Timeout | float = DEFAULT_TIMEOUT,
    transport: BaseTransport | None = None,
) -> Client:
    """A blocking client for the backend at ``url``; connections open on first use.

    Args:
        url: ``unix:///path/pipe.sock``, ``http://host:port``, ``https://...``,
            ``grpc://host:port`` (gRPC needs ``beephost-client[grpc]``).
        token: The backend's token, if it has one.
        timeout: Default time limits: a :class:`Timeout`, or seconds for the deadline.
        transport: A transport to use instead of the URL's (e.g. ``MockTransport``).

    Returns:
        A :class:`Client`; close it, or use it in a ``with`` block.

    Raises:
        ValueError: The URL's scheme is not supported.

    Example::

        with beephost_client.connect("unix:///tmp/beephost/pipe.sock") as client:
            print(client.evaluate("1 + 1"))
    """
    return Client(url, token=token, timeout=timeout, transport=transport)


def aconnect(
    url: str | None = None,
    *,
    token: str | None = None,
    timeout: Timeout | float = DEFAULT_TIMEOUT,
    transport: AsyncBaseTransport | None = None,
) -> AsyncClient:
    """An asyncio client for the backend at ``url``; the twin of :func:`connect`.

    Args:
        url: ``unix://``, ``http://``, ``https://`` or ``grpc://`` URL.
        token: The backend's token, if it has one.
        timeout: Default time limits: a :class:`Timeout`, or seconds for the deadline.
        transport: A transport to use instead of the URL's.

    Returns:
        An :class:`AsyncClient`; close it with ``aclose()`` or ``async with``.

    Example::

        async with beephost_client.aconnect("http://127.0.0.1:5678") as client:
            print(await client.evaluate("1 + 1"))
    """
    return AsyncClient(url, token=token, timeout=timeout, transport=transport)
