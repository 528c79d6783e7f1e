"""The asyncio controller client: AsyncControllerClient, runtimes to backends.

This file is the source of ``beephost_client/_sync/_controller.py`` (ControllerClient),
which ``packages/client/scripts/unasync.py`` generates from it (a test checks that the
two agree). Edit this one, then run ``uv run python packages/client/scripts/unasync.py``.
Everything the client decides without I/O lives in ``beephost_client._controller``;
the calls, by resource, in ``_controller_environments``, ``_controller_jobs`` and
``_controller_backends`` (each generated to ``_sync/`` as well).
"""

import os
from typing import Any

from beephost_client._async._scoped import AsyncScoped
from beephost_client._timeout import DEFAULT_TIMEOUT, Timeout, as_timeout
from beephost_client._transports._async.controller_http import (
    AsyncHTTPControllerTransport,
)
from beephost_client._transports.controller import (
    DEFAULT_CONTROLLER_URL,
    AsyncControllerTransport,
    Request,
)
from beephost_protocol.errors import InternalError

from ._controller_backends import _AsyncBackendCalls
from ._controller_environments import _AsyncEnvironmentCalls
from ._controller_jobs import _AsyncJobCalls
from ._controller_secrets import _AsyncSecretCalls

# What the client reads when given no URL or token.
_URL_VARIABLE = "BEEPHOST_CONTROLLER_URL"
_TOKEN_VARIABLE = "BEEPHOST_CONTROLLER_TOKEN"


class AsyncControllerClient(
    _AsyncEnvironmentCalls,
    _AsyncJobCalls,
    _AsyncBackendCalls,
    _AsyncSecretCalls,
    AsyncScoped,
):
    """A client of the controller's REST API, for asyncio code.

    Connecting does no I/O: the first call opens a connection.

    Args:
        url: The controller's URL: ``http://host:port``, ``https://...``, or
            ``unix:///abs/path/api.sock`` (HTTP over a Unix socket). Default: the
            ``BEEPHOST_CONTROLLER_URL`` variable, else ``http://127.0.0.1:8600``.
        token: The controller's API token. Default: the ``BEEPHOST_CONTROLLER_TOKEN``
            variable, else none. Explicit arguments win; an empty variable is unset.
        timeout: Time limits of each call: a :class:`Timeout`, or seconds. Waits
            (:meth:`wait_job`, :meth:`wait_backend`) have limits of their own.
        transport: A transport to use instead of HTTP (e.g.
            :class:`~beephost_client.MockTransport`).

    Raises:
        ValueError: ``url`` is neither an ``http(s)://`` URL with a host nor a
            ``unix:///`` URL with an absolute path.

    User code in an ``admin`` environment's backend finds both variables set (the
    controller's Unix socket and a token scoped to environments and backends), so
    ``AsyncControllerClient()`` needs no arguments there.

    Example::

        async with AsyncControllerClient(token="s3cret") as controller:
            for env in await controller.environments():
                print(env.name, env.status)
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        timeout: Timeout | float = DEFAULT_TIMEOUT,
        transport: AsyncControllerTransport | None = None,
    ) -> None:
        if url is None:
            url = os.environ.get(_URL_VARIABLE) or DEFAULT_CONTROLLER_URL
        if token is None:
            token = os.environ.get(_TOKEN_VARIABLE) or None
        self._url = url
        self._timeout = as_timeout(timeout)
        self._transport = transport or AsyncHTTPControllerTransport(
            url, token=token, timeout=self._timeout
        )

    @property
    def url(self) -> str:
        """The controller's URL."""
        return self._url

    @property
    def timeout(self) -> Timeout:
        """The time limits of each call."""
        return self._timeout

    def __repr__(self) -> str:
        return f"<AsyncControllerClient {self._url}>"

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._transport.aclose()

    async def _leave(self) -> None:
        await self.aclose()

    # -- health ---------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """Check that the controller answers (``GET /health``; no token needed).

        Returns:
            ``{"status": "ok"}``.

        Raises:
            ConnectError: Nothing listens at the URL.

        Example::

            await controller.health()  # {'status': 'ok'}
        """
        result: dict[str, Any] = await self._json("GET", "/health")
        return result

    async def ready(self) -> dict[str, Any]:
        """Check that the controller serves requests (``GET /ready``).

        Returns:
            ``{"status": "ready"}``.

        Raises:
            Unavailable: It is starting (reconciling containers) or shutting down.

        Example::

            await controller.ready()  # {'status': 'ready'}
        """
        result: dict[str, Any] = await self._json("GET", "/ready")
        return result

    async def metrics(self) -> str:
        """The Prometheus exposition text (``GET /metrics``).

        Returns:
            The metrics, in the text format.

        Example::

            text = await controller.metrics()
            assert "beephost_controller_jobs_total" in text
        """
        body = await self._send(Request("GET", "/metrics"))
        return body.decode("utf-8", "replace")

    async def config(self) -> dict[str, Any]:
        """The controller's effective settings, without secrets (``GET /api/v1/config``).

        Returns:
            Setting name to value, as the controller reports them.

        Raises:
            Unauthorized: A token is required and was missing or wrong.

        Example::

            settings = await controller.config()
            print(settings["default_python"])
        """
        result = await self._json("GET", "/api/v1/config")
        if not isinstance(result, dict):
            raise InternalError("the controller's config is not a JSON object")
        return result
