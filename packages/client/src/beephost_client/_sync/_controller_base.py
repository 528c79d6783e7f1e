"""The blocking controller client's plumbing: send, read JSON.

GENERATED from ``_async/_controller_base.py`` by ``packages/client/scripts/unasync.py``:
do not edit (part of ControllerClient; the docstrings there describe both).
"""

from collections.abc import Mapping
from typing import Any

from beephost_client import _controller
from beephost_client._timeout import Timeout
from beephost_client._transports.controller import ControllerTransport, Request


class _ControllerBase:
    """The transport, the time limits, and one request with its error mapping."""

    _transport: ControllerTransport
    _timeout: Timeout

    def _send(self, request: Request, timeout: float | None = None) -> bytes:
        response = self._transport.handle(
            request, timeout=timeout or self._timeout.request
        )
        body = response.read()
        if not 200 <= response.status < 300:
            raise _controller.error_of(request, response.status, body)
        return body

    def _json(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, object] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        request = _controller.request(method, path, query=query, body=body)
        return _controller.json_body(request, self._send(request))
