"""Annotated dependencies: what routes need, read from the state the app was built with.

They are ``async def`` although they never await: FastAPI runs a plain ``def``
dependency in a worker thread, which costs more than the rest of a request.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.responses import Response

from beephost_core import Executor
from beephost_http_backend.responses import JSONBytes
from beephost_http_backend.settings import Settings
from beephost_http_backend.state import BackendState
from beephost_protocol.models import Command


async def get_state(request: Request) -> BackendState:
    state: BackendState = request.app.state.backend
    return state


async def get_executor(request: Request) -> Executor:
    executor: Executor = request.app.state.backend.executor
    return executor


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.backend.settings
    return settings


StateDep = Annotated[BackendState, Depends(get_state)]
ExecutorDep = Annotated[Executor, Depends(get_executor)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

DeadlineHeader = Annotated[
    float | None,
    Header(
        alias="X-Beephost-Timeout",
        gt=0,
        description="Deadline in seconds when the body (or query) names none.",
    ),
]

LEASE_HEADER = "Beephost-Lease"
#: What beephost_core.leases accepts, in the OpenAPI document for clients and fuzzers
#: (app.py puts it there; the core checks it, with a message in words).
LEASE_PATTERN = r"^[A-Za-z0-9_-]{16,128}$"
LeaseHeader = Annotated[
    str | None,
    Header(
        alias=LEASE_HEADER,
        description="The client's lease (16 to 128 characters of A-Z, a-z, 0-9, '_' "
        "and '-', chosen by the client): objects this request creates in the 'default' "
        "session belong to it and are released when it expires (no request or renewal "
        "for the server's lease TTL) or is released. Without it they stay until "
        "released. Every request naming it renews it.",
    ),
]


@dataclass(frozen=True, slots=True)
class Runner:
    """What a command route needs: the executor, the request's deadline and lease."""

    executor: Executor
    deadline: float | None  # X-Beephost-Timeout: for commands whose body names none
    lease: str | None

    async def reply(self, command: Command, status: int = 200) -> Response:
        """Run ``command`` under the request's lease; its result is the response."""
        return JSONBytes(await self.executor.run(command, lease=self.lease), status)


async def get_runner(
    executor: ExecutorDep, deadline: DeadlineHeader = None, lease: LeaseHeader = None
) -> Runner:
    return Runner(executor, deadline, lease)


# Declares both headers in the route's OpenAPI, as the route's own parameters did.
RunnerDep = Annotated[Runner, Depends(get_runner)]
