"""The blocking controller client: ControllerClient, runtimes to backends.

GENERATED from ``_async/_controller.py`` by ``packages/client/scripts/unasync.py``: do
not edit. Every call blocks its thread; a ControllerClient may be shared by threads
(each call uses a connection of its own).
"""

import os
from typing import Any

from beephost_client._sync._scoped import Scoped
from beephost_client._timeout import DEFAULT_TIMEOUT, Timeout, as_timeout
from beephost_client._transports._sync.controller_http import (
    HTTPControllerTransport,
)
from beephost_client._transports.controller import (
    DEFAULT_CONTROLLER_URL,
    ControllerTransport,
    Request,
)
from beephost_protocol.errors import InternalError

from ._controller_backends import _BackendCalls
from ._controller_environments import _EnvironmentCalls
from ._controller_jobs import _JobCalls
from ._controller_secrets import _SecretCalls

# What the client reads when given no URL or token.
_URL_VARIABLE = "BEEPHOST_CONTROLLER_URL"
_TOKEN_VARIABLE = "BEEPHOST_CONTROLLER_TOKEN"


class ControllerClient(
    _EnvironmentCalls,
    _JobCalls,
    _BackendCalls,
    _SecretCalls,
    Scoped,
):
    """A blocking client of the controller's REST API; threads may share it.

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
    ``ControllerClient()`` needs no arguments there.

    Example::

        with ControllerClient(token="s3cret") as controller:
            for env in controller.environments():
                print(env.name, env.status)
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        timeout: Timeout | float = DEFAULT_TIMEOUT,
        transport: ControllerTransport | None = None,
    ) -> None:
        if url is None:
            url = os.environ.get(_URL_VARIABLE) or DEFAULT_CONTROLLER_URL
        if token is None:
            token = os.environ.get(_TOKEN_VARIABLE) or None
        self._url = url
        self._timeout = as_timeout(timeout)
        self._transport = transport or HTTPControllerTransport(
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
        return f"<ControllerClient {self._url}>"

    def close(self) -> None:
        """Close the client's connections."""
        self._transport.close()

    def _leave(self) -> None:
        self.close()

    # -- health ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Check that the controller answers (``GET /health``; no token needed).

        Returns:
            ``{"status": "ok"}``.

        Raises:
            ConnectError: Nothing listens at the URL.

        Example::

            controller.health()  # {'status': 'ok'}
        """
        result: dict[str, Any] = self._json("GET", "/health")
        return result

    def ready(self) -> dict[str, Any]:
        """Check that the controller serves requests (``GET /ready``).

        Returns:
            ``{"status": "ready"}``.

        Raises:
            Unavailable: It is starting (reconciling containers) or shutting down.

        Example::

            controller.ready()  # {'status': 'ready'}
        """
        result: dict[str, Any] = self._json("GET", "/ready")
        return result

    def metrics(self) -> str:
        """The Prometheus exposition text (``GET /metrics``).

        Returns:
            The metrics, in the text format.

        Example::

            text = controller.metrics()
            assert "beephost_controller_jobs_total" in text
        """
        body = self._send(Request("GET", "/metrics"))
        return body.decode("utf-8", "replace")

    def config(self) -> dict[str, Any]:
        """The controller's effective settings, without secrets (``GET /api/v1/config``).

        Returns:
            Setting name to value, as the controller reports them.

        Raises:
            Unauthorized: A token is required and was missing or wrong.

        Example::

            settings = controller.config()
            print(settings["default_python"])
        """
        result = self._json("GET", "/api/v1/config")
        if not isinstance(result, dict):
            raise InternalError("the controller's config is not a JSON object")
        return result
