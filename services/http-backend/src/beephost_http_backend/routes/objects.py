"""Remote objects of a session: create, list, read and write attributes, call, release."""

from typing import Annotated

from fastapi import Path, Query
from starlette.responses import Response

from beephost_http_backend.deps import ExecutorDep, LeaseHeader, RunnerDep
from beephost_http_backend.errors import WORKER_ERRORS
from beephost_http_backend.responses import JSONBytes
from beephost_http_backend.routes.sessions import SessionPath
from beephost_http_backend.routing import resource_router
from beephost_http_backend.schemas import (
    CallRequest,
    ObjectCreateRequest,
    ReleaseRequest,
    SetAttributeRequest,
)
from beephost_protocol import ErrorCode, models
from beephost_protocol.models import EmptyResult, HandleList, ReleaseResult, ValueResult

router, api = resource_router("/api/sessions/{session}/objects", "objects")

#: Operations that may return a value, which can take a new handle.
_VALUE_ERRORS = (*WORKER_ERRORS, ErrorCode.QUOTA_EXCEEDED)

HandlePath = Annotated[
    str, Path(min_length=1, description="Handle id, from a '$handle' value.")
]
NamePath = Annotated[str, Path(min_length=1, description="Attribute name.")]
TimeoutQuery = Annotated[
    float | None,
    Query(
        alias="timeout",
        gt=0,
        description="Deadline in seconds; overrides X-Beephost-Timeout.",
    ),
]


@api("POST", "", ValueResult, "Create an object", _VALUE_ERRORS, status_code=201)
async def create_object(
    session: SessionPath,
    body: ObjectCreateRequest,
    run: RunnerDep,
) -> Response:
    """Call a callable by dotted path and keep the result in the session.

    The value is a ``$handle`` for objects that are not plain data.
    """
    command = models.ObjectCreate(
        session=session,
        target=body.target,
        args=body.args,
        kwargs=body.kwargs,
        timeout=body.timeout or run.deadline,
    )
    return await run.reply(command, 201)


@api("GET", "", HandleList, "List objects", WORKER_ERRORS)
async def list_objects(
    session: SessionPath,
    run: RunnerDep,
) -> Response:
    """List the session's live handles, oldest first."""
    command = models.ObjectList(session=session, timeout=run.deadline)
    return await run.reply(command)


@api(
    "GET",
    "/{handle}/attributes/{name}",
    ValueResult,
    "Read an attribute",
    _VALUE_ERRORS,
)
async def get_attribute(
    session: SessionPath,
    handle: HandlePath,
    name: NamePath,
    run: RunnerDep,
    query_deadline: TimeoutQuery = None,
) -> Response:
    """Read an attribute of a handle's object."""
    command = models.ObjectGetAttr(
        session=session,
        handle=handle,
        name=name,
        timeout=query_deadline or run.deadline,
    )
    return await run.reply(command)


@api(
    "PUT",
    "/{handle}/attributes/{name}",
    EmptyResult,
    "Assign an attribute",
    WORKER_ERRORS,
)
async def set_attribute(
    session: SessionPath,
    handle: HandlePath,
    name: NamePath,
    body: SetAttributeRequest,
    run: RunnerDep,
) -> Response:
    """Assign an attribute of a handle's object."""
    command = models.ObjectSetAttr(
        session=session,
        handle=handle,
        name=name,
        value=body.value,
        timeout=body.timeout or run.deadline,
    )
    return await run.reply(command)


@api(
    "POST", "/{handle}/call", ValueResult, "Call an object or its method", _VALUE_ERRORS
)
async def call_object(
    session: SessionPath,
    handle: HandlePath,
    body: CallRequest,
    run: RunnerDep,
) -> Response:
    """Call a handle's object itself (``method`` null) or one of its methods."""
    command = models.ObjectCall(
        session=session,
        handle=handle,
        method=body.method,
        args=body.args,
        kwargs=body.kwargs,
        timeout=body.timeout or run.deadline,
    )
    return await run.reply(command)


@api("POST", "/release", ReleaseResult, "Release objects", WORKER_ERRORS)
async def release_objects(
    session: SessionPath,
    body: ReleaseRequest,
    executor: ExecutorDep,
    lease: LeaseHeader = None,
) -> Response:
    """Forget handles; unknown ids are ignored, so a release is safe to repeat."""
    command = models.ObjectRelease(session=session, handles=body.handles)
    return JSONBytes(await executor.run(command, lease=lease))
