"""The blocking controller client's backend calls.

GENERATED from ``_async/_controller_backends.py`` by ``packages/client/scripts/unasync.py``:
do not edit (part of ControllerClient; the docstrings there describe both).
"""

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from beephost_client import _controller
from beephost_client._controller_types import (
    Backend,
    BackendConnection,
    BackendType,
    EgressRefusal,
    InstalledPackage,
    Job,
    Limits,
)
from beephost_client._timeout import DEFAULT_TIMEOUT, Timeout
from beephost_client._transports.controller import Request
from beephost_protocol.errors import ExecutionTimeout

from ._client import Client
from ._connect import connect
from ._controller_base import _ControllerBase

#: Seconds one ``wait_backend`` request lets the controller hold it (at most 30).
LONG_POLL_SECONDS = 10.0


class _BackendCalls(_ControllerBase):
    """Backends: the containers that serve an environment over a transport."""

    # -- backends ---------------------------------------------------------------------------

    def start_backend(
        self,
        environment: str,
        type: BackendType,
        *,
        token: str | None = None,
        port: int | None = None,
        bind_address: str | None = None,
        limits: Limits | Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        ttl: float | None = None,
        idle_timeout: float | None = None,
        egress: Mapping[str, Any] | None = None,
    ) -> Backend:
        """Start a backend container for an environment (see :meth:`wait_backend`).

        Args:
            environment: The environment to run; its image must be built.
            type: The transport: ``http``, ``pipe`` or ``rpc``.
            token: The backend's token (default: the controller makes one).
            port: The host port to publish (``http``, ``rpc``; default: any free one).
            bind_address: The host address to publish on (default: loopback).
            limits: Memory, CPU and process limits (default: the controller's).
            options: Overrides of the controller's container hardening.
            ttl: Its maximum lifetime in seconds: then the controller stops it
                (status ``stopped``, reason ``expired``). Default: the controller's
                ``BACKEND_TTL`` (a day, unless configured otherwise).
            idle_timeout: Seconds without a request after which the controller
                stops it (reason ``idle``; :meth:`Client.keep_alive` resets the
                clock). Default: the controller's ``BACKEND_IDLE_TIMEOUT`` (an hour,
                unless configured otherwise).
            egress: An allow-list replacing its environment's egress policy
                (``{"allow": [...]}``, docs/operators/egress.md); not with
                ``options["network"]``, which replaces it with none or full.

        Returns:
            The :class:`Backend` (status ``starting``), with its ``token``: the
            only reply that carries it.

        Raises:
            NotFound: No environment has that name.
            InvalidRequest: The environment is not built, a bad option, or an
                egress policy that is refused or names a secret not stored.
            Unavailable: The engine cannot run it (an allow-list: not enforced
                by any engine yet).

        Example::

            backend = controller.start_backend("data", "http")
            controller.wait_backend(backend.id)
            print(backend.endpoint, backend.token)
        """
        body = _controller.backend_body(
            environment,
            type,
            token,
            port,
            bind_address,
            limits,
            options,
            ttl,
            idle_timeout,
            egress,
        )
        return _controller.backend(self._json("POST", "/api/v1/backends", body=body))

    def backends(self, *, mine: bool = False) -> list[Backend]:
        """Every backend the controller runs or ran (without tokens) that this client's
        token may see: an admin backend's token sees only the backends it started.

        Args:
            mine: Only the backends this client's token started.

        Returns:
            The :class:`Backend` list.

        Example::

            ready = [b.id for b in controller.backends() if b.status == "ready"]
        """
        path = "/api/v1/backends?mine=true" if mine else "/api/v1/backends"
        raw = self._json("GET", path)
        return _controller.many(_controller.backend, raw, "backends")

    def backend(self, backend_id: str) -> Backend:
        """One backend (without its token).

        Args:
            backend_id: The backend's id.

        Returns:
            The :class:`Backend`.

        Raises:
            NotFound: No backend has that id.

        Example::

            backend = controller.backend(backend_id)
            print(backend.status)
        """
        return _controller.backend(
            self._json("GET", _controller.backend_path(backend_id))
        )

    def egress_refusals(
        self, backend_id: str, *, limit: int = 10
    ) -> list[EgressRefusal]:
        """The last connections the egress proxy refused a backend, oldest first:
        why a request of its code failed (empty unless its policy is an
        allow-list).

        Args:
            backend_id: The backend's id.
            limit: At most this many (1 to 100).

        Returns:
            The :class:`EgressRefusal` list.

        Raises:
            NotFound: No backend has that id.

        Example::

            for refusal in controller.egress_refusals(backend.id):
                print(refusal.destination, refusal.reason)
        """
        path = f"{_controller.backend_path(backend_id)}/egress?limit={int(limit)}"
        return _controller.egress_refusals(self._json("GET", path))

    def stop_backend(self, backend_id: str) -> None:
        """Stop a backend and remove its container.

        Args:
            backend_id: The backend's id.

        Raises:
            NotFound: No backend has that id.

        Example::

            controller.stop_backend(backend.id)
        """
        self._send(Request("DELETE", _controller.backend_path(backend_id)))

    def backend_logs(self, backend_id: str, *, tail: int | None = None) -> str:
        """The output of a backend's container.

        Args:
            backend_id: The backend's id.
            tail: Only the last ``tail`` lines (default: all).

        Returns:
            The log text.

        Raises:
            NotFound: No backend has that id.

        Example::

            print(controller.backend_logs(backend.id, tail=50))
        """
        request = _controller.request(
            "GET", _controller.backend_path(backend_id) + "/logs", query={"tail": tail}
        )
        body = self._send(request)
        return body.decode("utf-8", "replace")

    def install(self, backend_id: str, packages: Sequence[str]) -> Job:
        """Add packages to a running backend; a job of kind ``install``, with a log
        (see :meth:`wait_job`).

        The controller resolves them with the environment's lock and what the backend
        has installed already (nothing changes version; a conflict fails the job with
        the resolver's message), downloads their wheels and copies them in: the
        backend stays offline. Every session imports them at its next import. A
        failed install changes nothing; the environment is unchanged (create a new
        one for a reproducible set).

        Args:
            backend_id: The backend's id.
            packages: PEP 508 requirements (``tabulate``, ``rich>=13``).

        Returns:
            The queued :class:`Job`.

        Raises:
            NotFound: No backend has that id.
            Conflict: The backend is not ready.
            InvalidRequest: No packages, or one that is no plain requirement.

        Example::

            job = controller.install(backend.id, ["tabulate"])
            job = controller.wait_job(job.id)
            assert job.succeeded, job.error
        """
        raw = self._json(
            "POST",
            _controller.backend_path(backend_id) + "/packages",
            body={"packages": list(packages)},
        )
        return _controller.job(raw)

    def installed_packages(self, backend_id: str) -> list[InstalledPackage]:
        """What was installed into a running backend with :meth:`install` (not its
        environment's packages).

        Args:
            backend_id: The backend's id.

        Raises:
            NotFound: No backend has that id.
            Conflict: The backend is not ready.

        Example::

            names = [p.name for p in controller.installed_packages(backend.id)]
        """
        raw = self._json("GET", _controller.backend_path(backend_id) + "/packages")
        return _controller.installed_packages(raw)

    def backend_connection(self, backend_id: str) -> BackendConnection:
        """The URL and token to connect to a backend with.

        Args:
            backend_id: The backend's id.

        Returns:
            A :class:`BackendConnection`.

        Raises:
            NotFound: No backend has that id.

        Example::

            conn = controller.backend_connection(backend.id)
            client = beephost_client.connect(conn.url, token=conn.token)
        """
        raw = self._json("GET", _controller.backend_path(backend_id) + "/connection")
        return _controller.backend_connection(raw)

    def wait_backend(
        self,
        backend_id: str,
        *,
        status: str = "ready",
        timeout: float = 120.0,
        on_status: Callable[[Backend], object] | None = None,
    ) -> Backend:
        """Poll a backend until it has ``status``.

        Args:
            backend_id: The backend's id.
            status: The status to wait for.
            timeout: Seconds to wait.
            on_status: Called with the :class:`Backend` whenever its status changes.

        Returns:
            The :class:`Backend` in that status.

        Raises:
            Unavailable: The backend ended (``exited``, ``stopped``) instead.
            ExecutionTimeout: It did not get there within ``timeout``.
            NotFound: No backend has that id.

        Example::

            backend = controller.start_backend("data", "pipe")
            backend = controller.wait_backend(backend.id, timeout=60)
        """
        deadline = time.monotonic() + timeout
        delay, seen, wait = 0.1, None, 0.0
        while True:
            asked = time.monotonic()
            # The controller holds the request until the status changes (long poll).
            request = _controller.request(
                "GET",
                _controller.backend_path(backend_id),
                query={"wait": round(wait, 3) or None, "seen": seen if wait else None},
            )
            found = _controller.backend(
                _controller.json_body(
                    request, self._send(request, wait + self._timeout.request)
                )
            )
            answered_at_once = time.monotonic() - asked < min(wait, 0.5)
            changed = found.status != seen
            wait = max(0.0, min(deadline - time.monotonic(), LONG_POLL_SECONDS))
            if changed:
                seen = found.status
                if on_status is not None:
                    on_status(found)
            if _controller.backend_reached(found, status):
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = f" ({found.reason})" if found.reason else ""
                raise ExecutionTimeout(
                    f"backend {backend_id} is still {found.status}{reason} after "
                    f"{timeout:g}s waiting for {status}",
                    {
                        "backend": backend_id,
                        "status": found.status,
                        "client_side": True,
                    },
                )
            if answered_at_once and not changed:
                # A controller without the long poll: poll with a backoff instead.
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, 1.0)

    def connect_backend(
        self, backend_id: str, *, timeout: Timeout | float = DEFAULT_TIMEOUT
    ) -> Client:
        """A client of a backend, from its URL and token.

        Args:
            backend_id: The backend's id.
            timeout: The client's time limits.

        Returns:
            An :class:`~beephost_client.Client`; close it, or use it in
            ``with``.

        Raises:
            NotFound: No backend has that id.

        Example::

            with controller.connect_backend(backend.id) as client:
                print(client.evaluate("1 + 1"))
        """
        connection = self.backend_connection(backend_id)
        return connect(connection.url, token=connection.token, timeout=timeout)
