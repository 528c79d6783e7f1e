"""Sessions: open, list, describe, close, interrupt."""

from typing import Annotated

from fastapi import Body, Path
from starlette.responses import Response

from beephost_http_backend.deps import DeadlineHeader, ExecutorDep
from beephost_http_backend.errors import WORKER_ERRORS
from beephost_http_backend.responses import JSONBytes
from beephost_http_backend.routing import resource_router
from beephost_http_backend.schemas import SessionOpenRequest
from beephost_protocol import ErrorCode
from beephost_protocol.models import (
    Interrupt,
    InterruptResult,
    SessionClose,
    SessionClosed,
    SessionDescription,
    SessionInfo,
    SessionList,
    SessionListing,
    SessionOpen,
    SessionOpened,
)

router, api = resource_router("/api/sessions", "sessions")

SessionPath = Annotated[
    str,
    Path(
        min_length=1, max_length=128, description="Session id; 'default' always exists."
    ),
]


@api(
    "POST",
    "",
    SessionOpened,
    "Open a session",
    (ErrorCode.QUOTA_EXCEEDED,),
    status_code=201,
)
async def open_session(
    executor: ExecutorDep,
    body: Annotated[SessionOpenRequest, Body(default_factory=SessionOpenRequest)],
) -> Response:
    """Open a session: its own worker process, namespace and handles.

    It expires after ``ttl`` idle seconds (the server's default when omitted).
    """
    command = SessionOpen(ttl=body.ttl)
    return JSONBytes(await executor.run(command), 201)


@api("GET", "", SessionListing, "List sessions")
async def list_sessions(executor: ExecutorDep) -> Response:
    """List the ids of open sessions, 'default' first."""
    return JSONBytes(await executor.run(SessionList()))


@api("GET", "/{session}", SessionDescription, "Describe a session", WORKER_ERRORS)
async def describe_session(
    session: SessionPath, executor: ExecutorDep, deadline: DeadlineHeader = None
) -> Response:
    """Describe a session: interpreter, environment, packages and counters."""
    return JSONBytes(await executor.run(SessionInfo(session=session, timeout=deadline)))


@api("DELETE", "/{session}", SessionClosed, "Close a session", (ErrorCode.NOT_FOUND,))
async def close_session(session: SessionPath, executor: ExecutorDep) -> Response:
    """Close a session, killing its worker; closing 'default' resets it.

    Closing a session that was lost (its worker died, or it expired) succeeds.
    """
    return JSONBytes(await executor.run(SessionClose(session=session)))


@api(
    "POST",
    "/{session}/interrupt",
    InterruptResult,
    "Interrupt a session",
    (ErrorCode.NOT_FOUND, ErrorCode.SESSION_LOST),
)
async def interrupt_session(session: SessionPath, executor: ExecutorDep) -> Response:
    """Raise KeyboardInterrupt in the code the session is running, if any.

    The interrupted request ends with ``interrupted`` (409); the session's state is kept.
    """
    return JSONBytes(await executor.run(Interrupt(session=session)))
