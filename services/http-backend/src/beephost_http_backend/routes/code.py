"""Running code: eval, exec and streamed exec in a session."""

from starlette.responses import Response

from beephost_http_backend.commands import eval_command, exec_command
from beephost_http_backend.deps import (
    DeadlineHeader,
    LeaseHeader,
    RunnerDep,
    StateDep,
)
from beephost_http_backend.errors import WORKER_ERRORS, documented
from beephost_http_backend.responses import NDJSONResponse
from beephost_http_backend.routing import resource_router
from beephost_http_backend.schemas import ExecRequest, StreamLine
from beephost_http_backend.streaming import ExecStream
from beephost_protocol.models import Evaluate, ExecResult, ValueResult

router, api = resource_router("/api", "code")


@api("POST", "/eval", ValueResult, "Evaluate an expression", WORKER_ERRORS)
async def evaluate(
    body: Evaluate,
    run: RunnerDep,
) -> Response:
    """Evaluate one Python expression in a session and return its value.

    ``locals`` are extra names visible to this expression only. Values are JSON with
    ``$``-tags for what JSON cannot say (tuples, bytes, non-finite floats, handles).
    """
    return await run.reply(eval_command(body, run.deadline))


@api("POST", "/exec", ExecResult, "Run statements", WORKER_ERRORS)
async def execute(
    body: ExecRequest,
    run: RunnerDep,
) -> Response:
    """Run statements in a session; captured stdout and stderr come with the result.

    A trailing expression statement's value is returned, as in a notebook.
    """
    return await run.reply(exec_command(body, run.deadline))


@router.post(
    "/exec/stream",
    response_class=NDJSONResponse,
    responses={
        200: {
            "model": StreamLine,
            "description": "`application/x-ndjson`: one StreamLine per line. "
            "`event` lines as output is produced, then exactly one `result` or "
            "`error` line. The response starts with the first output; an error "
            "before it is an ordinary error response.",
        },
        **documented(*WORKER_ERRORS),
    },
    summary="Run statements, streaming their output",
)
async def execute_stream(
    body: ExecRequest,
    state: StateDep,
    deadline: DeadlineHeader = None,
    lease: LeaseHeader = None,
) -> Response:
    """Run statements and stream stdout and stderr as newline-delimited JSON."""
    command = exec_command(body, deadline, stream=True)
    stream = ExecStream(state.executor, command, state.background, lease)
    return await stream.response()
