"""The blocking controller client: ControllerClient, runtimes to backends.

GENERATED from ``_async/_controller.py`` by ``packages/client/scripts/unasync.py``: do
not edit. Every call blocks its thread; a ControllerClient may be shared by threads
(each call uses a connection of its own).
"""

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self

from beephost_client import _controller
from beephost_client._config import DEFAULT_TIMEOUT, Timeout, as_timeout
from beephost_client._connect import connect
from beephost_client._controller_types import (
    Backend,
    BackendConnection,
    BackendType,
    Environment,
    Job,
    JobLogPage,
    Limits,
    LogLine,
    Runtime,
)
from beephost_client._exceptions import ConnectionLost
from beephost_client._transports._sync.controller_http import (
    HTTPControllerTransport,
)
from beephost_client._transports.controller import (
    DEFAULT_CONTROLLER_URL,
    ControllerTransport,
    Request,
)
from beephost_protocol import LineDecoder, LineTooLong
from beephost_protocol.errors import ExecutionTimeout, InternalError

from ._client import Client

logger = logging.getLogger("beephost_client.controller")

#: Seconds one ``wait_backend`` request lets the controller hold it (at most 30).
LONG_POLL_SECONDS = 10.0

# What the client reads when given no URL or token.
_URL_VARIABLE = "BEEPHOST_CONTROLLER_URL"
_TOKEN_VARIABLE = "BEEPHOST_CONTROLLER_TOKEN"

_MAX_LOG_LINE = 1 << 20  # the controller cuts log lines at 4000 characters
_STREAM_RETRIES = 5  # a broken log stream is followed again this often


class ControllerClient:
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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------

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

    def _log_stream(self, job_id: str, timeout: float) -> Iterator[LogLine | Job]:
        request = Request("GET", _controller.job_path(job_id) + "/log/stream")
        response = self._transport.handle(request, timeout=timeout)
        try:
            if not 200 <= response.status < 300:
                body = response.read()
                raise _controller.error_of(request, response.status, body)
            decoder = LineDecoder(_MAX_LOG_LINE)
            for piece in response.iter_bytes():
                for line in decoder.feed(piece):
                    if isinstance(line, LineTooLong):
                        raise InternalError("a job log line is longer than 1 MiB")
                    item = _controller.stream_item(line)
                    if item is not None:
                        yield item
        finally:
            response.close()

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

    # -- runtimes -----------------------------------------------------------------------

    def runtimes(self) -> list[Runtime]:
        """The CPython versions the controller offers.

        Returns:
            One :class:`Runtime` per version, with its exact version once initialised.

        Raises:
            Unauthorized: A token is required and was missing or wrong.

        Example::

            for runtime in controller.runtimes():
                print(runtime.python, runtime.initialised)
        """
        raw = self._json("GET", "/api/v1/runtimes")
        return _controller.many(_controller.runtime, raw, "runtimes")

    def init_runtime(self, python: str | None = None) -> Job:
        """Make sure a runtime's base image exists; a job (see :meth:`wait_job`).

        Args:
            python: The CPython minor version, e.g. ``3.13`` (default: the
                controller's default runtime).

        Returns:
            The queued :class:`Job`.

        Raises:
            InvalidRequest: The controller does not offer that version.

        Example::

            job = controller.init_runtime("3.13")
            job = controller.wait_job(job.id)
            assert job.succeeded
        """
        raw = self._json("POST", "/api/v1/runtimes/init", body={"python": python})
        return _controller.job(raw)

    # -- environments -------------------------------------------------------------------

    def environments(self) -> list[Environment]:
        """Every environment, by name.

        Returns:
            The :class:`Environment` list.

        Raises:
            Unauthorized: A token is required and was missing or wrong.

        Example::

            names = [env.name for env in controller.environments()]
        """
        raw = self._json("GET", "/api/v1/environments")
        return _controller.many(_controller.environment, raw, "environments")

    def environment(self, name: str) -> Environment:
        """One environment.

        Args:
            name: The environment's name.

        Returns:
            The :class:`Environment`, with its build status.

        Raises:
            NotFound: No environment has that name.

        Example::

            env = controller.environment("data")
            print(env.status, env.image)
        """
        return _controller.environment(
            self._json("GET", _controller.environment_path(name))
        )

    def create_environment(
        self,
        name: str,
        *,
        python: str | None = None,
        requirements: Iterable[str] = (),
        requirements_txt: str | None = None,
        network: bool = False,
    ) -> Environment:
        """Create an environment; its image builds as a job (``job_id``).

        Args:
            name: A unique name: lowercase letters, digits, ``.``, ``_`` and ``-``.
            python: The CPython minor version (default: the controller's default).
            requirements: Requirement specifiers, e.g. ``["pandas>=2"]``.
            requirements_txt: The text of a requirements.txt, merged with
                ``requirements`` (options such as ``-r`` are refused).
            network: Whether the environment's backends get network access.

        Returns:
            The new :class:`Environment` (status ``pending``).

        Raises:
            Conflict: An environment of that name exists.
            InvalidRequest: A bad name, version or requirement.

        Example::

            env = controller.create_environment("data", requirements=["pandas"])
            controller.wait_job(env.job_id)
        """
        body = _controller.environment_body(
            name, python, requirements, requirements_txt, network
        )
        return _controller.environment(
            self._json("POST", "/api/v1/environments", body=body)
        )

    def ensure_environment(
        self,
        name: str,
        *,
        python: str | None = None,
        requirements: Iterable[str] = (),
        requirements_txt: str | None = None,
        network: bool = False,
    ) -> Environment:
        """Create an environment unless an equal one exists (idempotent).

        An existing environment with the same definition is returned as it is; one
        whose build failed is built again.

        Args:
            name: The environment's name.
            python: The CPython minor version (default: the controller's default).
            requirements: Requirement specifiers.
            requirements_txt: The text of a requirements.txt.
            network: Whether its backends get network access.

        Returns:
            The :class:`Environment`, existing or new.

        Raises:
            Conflict: The name exists with another definition.
            InvalidRequest: A bad name, version or requirement.

        Example::

            env = controller.ensure_environment("data", requirements=["pandas"])
            if env.status != "ready":
                controller.wait_job(env.job_id)
        """
        body = _controller.environment_body(
            name, python, requirements, requirements_txt, network
        )
        raw = self._json("PUT", _controller.environment_path(name), body=body)
        return _controller.environment(raw)

    def delete_environment(self, name: str) -> None:
        """Forget an environment (its image stays while others share it).

        Args:
            name: The environment's name.

        Raises:
            NotFound: No environment has that name.
            Conflict: Backends of the environment run; stop them first.

        Example::

            controller.delete_environment("data")
        """
        self._send(Request("DELETE", _controller.environment_path(name)))

    def admin_environment(self) -> Environment:
        """Make sure the admin environment exists (its image may build as a job).

        Returns:
            The admin :class:`Environment`; wait for ``job_id`` unless it is ready.

        Raises:
            Unauthorized: A token is required and was missing or wrong.

        Example::

            env = controller.admin_environment()
            if env.status != "ready" and env.job_id:
                controller.wait_job(env.job_id)
        """
        return _controller.environment(self._json("POST", "/api/v1/environments/admin"))

    # -- jobs -------------------------------------------------------------------------------

    def jobs(self) -> list[Job]:
        """Every job the controller remembers.

        Returns:
            The :class:`Job` list.

        Example::

            running = [job for job in controller.jobs() if not job.finished]
        """
        return _controller.many(
            _controller.job, self._json("GET", "/api/v1/jobs"), "jobs"
        )

    def job(self, job_id: str) -> Job:
        """One job.

        Args:
            job_id: The job's id.

        Returns:
            The :class:`Job`.

        Raises:
            NotFound: No job has that id.

        Example::

            job = controller.job(job_id)
            if job.status == "failed":
                print(job.error)
        """
        return _controller.job(self._json("GET", _controller.job_path(job_id)))

    def job_log(self, job_id: str, *, after: int = -1, limit: int = 1000) -> JobLogPage:
        """A page of a job's log.

        Args:
            job_id: The job's id.
            after: Return lines after this position (``next`` of the previous page).
            limit: At most this many lines (the controller allows up to 10000).

        Returns:
            A :class:`JobLogPage` with the job and its lines.

        Raises:
            NotFound: No job has that id.

        Example::

            page = controller.job_log(job_id)
            print("\\n".join(line.line for line in page.lines))
        """
        raw = self._json(
            "GET",
            _controller.job_path(job_id) + "/log",
            query={"after": after, "limit": limit},
        )
        return _controller.job_log_page(raw)

    def wait_job(
        self,
        job_id: str,
        *,
        on_log: Callable[[LogLine], object] | None = None,
        timeout: float = 3600.0,
    ) -> Job:
        """Follow a job's log stream until the job ends.

        A broken stream is followed again, without repeating lines.

        Args:
            job_id: The job's id.
            on_log: Called with each :class:`LogLine` as the job prints it.
            timeout: Seconds to wait for the end.

        Returns:
            The finished :class:`Job`; check ``succeeded`` (a failed job does not
            raise: its ``error`` says why).

        Raises:
            NotFound: No job has that id.
            ExecutionTimeout: The job did not end within ``timeout``.

        Example::

            job = controller.wait_job(env.job_id, on_log=lambda l: print(l.line))
            if not job.succeeded:
                raise SystemExit(job.error)
        """
        deadline = time.monotonic() + timeout
        last, lost = -1, 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ExecutionTimeout(
                    f"job {job_id} did not finish within {timeout:g}s",
                    {"job": job_id, "client_side": True},
                )
            finished: Job | None = None
            try:
                for item in self._log_stream(job_id, remaining):
                    if isinstance(item, Job):
                        finished = item  # the last line: read on to the body's end
                    elif item.seq > last:
                        last = item.seq
                        if on_log is not None:
                            on_log(item)
            except ExecutionTimeout as exc:
                if not exc.data.get("client_side"):
                    raise
                raise ExecutionTimeout(
                    f"job {job_id} did not finish within {timeout:g}s",
                    {"job": job_id, "client_side": True},
                ) from exc
            except ConnectionLost as exc:
                lost += 1
                if lost > _STREAM_RETRIES:
                    raise
                logger.debug(
                    "job %s: log stream broke (%s); following again", job_id, exc
                )
            if finished is not None:
                return finished
            # The stream ended early (the controller caps its length) or broke.
            time.sleep(min(0.5, max(deadline - time.monotonic(), 0)))

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

        Returns:
            The :class:`Backend` (status ``starting``), with its ``token``: the
            only reply that carries it.

        Raises:
            NotFound: No environment has that name.
            InvalidRequest: The environment is not built, or a bad option.

        Example::

            backend = controller.start_backend("data", "http")
            controller.wait_backend(backend.id)
            print(backend.endpoint, backend.token)
        """
        body = _controller.backend_body(
            environment, type, token, port, bind_address, limits, options
        )
        return _controller.backend(self._json("POST", "/api/v1/backends", body=body))

    def backends(self) -> list[Backend]:
        """Every backend the controller runs or ran (without tokens).

        Returns:
            The :class:`Backend` list.

        Example::

            ready = [b.id for b in controller.backends() if b.status == "ready"]
        """
        raw = self._json("GET", "/api/v1/backends")
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
