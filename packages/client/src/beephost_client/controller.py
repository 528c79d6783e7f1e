"""A typed client for the controller's REST API: runtimes, environments, jobs, backends.

    from beephost_client.controller import ControllerClient

    with ControllerClient("http://127.0.0.1:8600", token="...") as controller:
        env = controller.create_environment("data", requirements=["pandas"])
        controller.wait_job(env.job_id, on_log=lambda line: print(line.line))
        backend = controller.start_backend("data", "http")
        controller.wait_backend(backend.id)
        with controller.connect_backend(backend.id) as client:
            print(client.evaluate("__import__('pandas').__version__"))

:class:`AsyncControllerClient` is its asyncio twin (the same methods, awaited).
Errors are the SDK's own taxonomy (:mod:`beephost_protocol.errors`), plus
:class:`Conflict` for HTTP 409. Every call has a finite time limit. Requests go
through the same HTTP/1.1 connections as the SDK's HTTP transport, over TCP or, for a
``unix:///path/api.sock`` URL, over a Unix socket (how admin backends reach the
controller). ``ControllerClient()`` without arguments reads ``BEEPHOST_CONTROLLER_URL``
and ``BEEPHOST_CONTROLLER_TOKEN``. :class:`~beephost_client.MockTransport` stands in
for a controller in tests (``MockControllerTransport`` is the same class).
"""

from beephost_client._async._controller import AsyncControllerClient
from beephost_client._controller_types import (
    Backend,
    BackendConnection,
    BackendType,
    Egress,
    EgressRefusal,
    Environment,
    Image,
    InstalledPackage,
    Job,
    JobLogPage,
    Limits,
    LogLine,
    Pool,
    Runtime,
    Secret,
)
from beephost_client._sync._controller import ControllerClient
from beephost_client._transports._async.controller_http import (
    AsyncHTTPControllerTransport,
)
from beephost_client._transports._sync.controller_http import HTTPControllerTransport
from beephost_client._transports.controller import (
    DEFAULT_CONTROLLER_URL,
    AsyncControllerTransport,
    ControllerTransport,
    Request,
    Response,
)
from beephost_client._transports.mock import MockTransport
from beephost_protocol.errors import Conflict

MockControllerTransport = MockTransport
"""The SDK's one test transport, under the name older code imports it by."""

__all__ = [
    "DEFAULT_CONTROLLER_URL",
    "AsyncControllerClient",
    "AsyncControllerTransport",
    "AsyncHTTPControllerTransport",
    "Backend",
    "BackendConnection",
    "BackendType",
    "Conflict",
    "ControllerClient",
    "ControllerTransport",
    "Egress",
    "EgressRefusal",
    "Environment",
    "HTTPControllerTransport",
    "Image",
    "InstalledPackage",
    "Job",
    "JobLogPage",
    "Limits",
    "LogLine",
    "MockControllerTransport",
    "Pool",
    "Request",
    "Response",
    "Runtime",
    "Secret",
]
