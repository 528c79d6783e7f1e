"""The HTTP transports of the HTTP backend: :class:`HTTPTransport` and its asyncio twin.

``_async/http.py`` is written by hand; ``_sync/http.py`` is generated from it
(``packages/client/scripts/unasync.py``). Both speak HTTP/1.1 through ``_httpio``.
"""

from beephost_client._transports._async.http import AsyncHTTPTransport
from beephost_client._transports._sync.http import HTTPTransport

__all__ = ["AsyncHTTPTransport", "HTTPTransport"]
