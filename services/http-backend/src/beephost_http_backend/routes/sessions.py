"""Sessions: open, list, describe, close, interrupt."""

from typing import Annotated

from fastapi import APIRouter, Body, Path
from starlette.responses import Response

from beephost_http_backend.deps import DeadlineHeader, ExecutorDep
from beephost_http_backend.errors import WORKER_ERRORS, documented
from beephost_http_backend.responses import JSONBytes
from beephost_http_backend.routing import BackendRoute
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

router = APIRouter(prefix="/api/sessions", tags=["sessions"], route_class=BackendRoute)

SessionPath = Annotated[
    str,
    Path(
        min_length=1, max_length=128, description="Session id; 'default' always exists."
    ),
]


@router.post(
    "",
    status_code=201,
    response_model=SessionOpened,
    responses=documented(ErrorCode.QUOTA_EXCEEDED),
    summary="Open a session",
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


@router.get(
    "", response_model=SessionListing, responses=documented(), summary="List sessions"
)
async def list_sessions(executor: ExecutorDep) -> Response:
    """List the ids of open sessions, 'default' first."""
    return JSONBytes(await executor.run(SessionList()))


@router.get(
    "/{session}",
    response_model=SessionDescription,
    responses=documented(*WORKER_ERRORS),
    summary="Describe a session",
)
async def describe_session(
    session: SessionPath, executor: ExecutorDep, deadline: DeadlineHeader = None
) -> Response:
    """Describe a session: interpreter, environment, packages and counters."""
    return JSONBytes(await executor.run(SessionInfo(session=session, timeout=deadline)))


@router.delete(
    "/{session}",
    response_model=SessionClosed,
    responses=documented(ErrorCode.NOT_FOUND),
    summary="Close a session",
)
async def close_session(session: SessionPath, executor: ExecutorDep) -> Response:
    """Close a session, killing its worker; closing 'default' resets it.

    Closing a session that was lost (its worker died, or it expired) succeeds.
    """
    return JSONBytes(await executor.run(SessionClose(session=session)))


@router.post(
    "/{session}/interrupt",
    response_model=InterruptResult,
    responses=documented(ErrorCode.NOT_FOUND, ErrorCode.SESSION_LOST),
    summary="Interrupt a session",
)
async def interrupt_session(session: SessionPath, executor: ExecutorDep) -> Response:
    """Raise KeyboardInterrupt in the code the session is running, if any.

    The interrupted request ends with ``interrupted`` (409); the session's state is kept.
    """
    return JSONBytes(await executor.run(Interrupt(session=session)))
