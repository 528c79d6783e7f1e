"""The Executor service: decode with pb_codec, run in the core, encode; errors map once."""

from __future__ import annotations  # grpc's classes are generic only in grpc-stubs

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc
from prometheus_client import CollectorRegistry, Counter

from beephost_core import Executor
from beephost_pb.exec.v1 import exec_pb2 as pb
from beephost_pb.exec.v1 import exec_pb2_grpc
from beephost_protocol import models, pb_codec
from beephost_protocol.errors import (
    BeepHostError,
    ExecutionTimeout,
    InternalError,
    Unavailable,
)
from beephost_rpc_backend import errors

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]
Reply = TypeVar("Reply")
Decode = Callable[[float | None], models.Command]
Result = dict[str, Any]


class ExecutorServicer(exec_pb2_grpc.ExecutorServicer):
    """``beephost.exec.v1.Executor`` over one core Executor.

    A command runs in its own task, never cancelled by its call: when the client cancels
    or its deadline passes, gRPC cancels the handler, and the command goes on to the
    deadline the core was given (then the core interrupts it, or kills a worker that
    ignores the interrupt), so a worker is never left running unsupervised.
    """

    def __init__(
        self, executor: Executor, max_timeout: float, registry: CollectorRegistry
    ) -> None:
        self.executor = executor
        self.max_timeout = max_timeout
        self.accepting = False  # set once the executor has started; cleared on drain
        self.draining = False
        # Running commands, each with the future its handler waits on.
        self.inflight: dict[asyncio.Task[Result], asyncio.Future[None]] = {}
        self.rejected = Counter(
            "beephost_grpc_rejected_requests",
            "Calls answered with an error before reaching the core, by code.",
            ["code"],
            registry=registry,
        )

    # -- the RPCs ---------------------------------------------------------------------

    async def Evaluate(
        self, request: pb.EvaluateRequest, context: Context
    ) -> pb.ValueReply:
        decode = partial(pb_codec.evaluate_command, request)
        return await self._unary(context, decode, pb_codec.value_reply)

    async def Execute(
        self, request: pb.ExecuteRequest, context: Context
    ) -> pb.ExecuteReply:
        decode = partial(pb_codec.execute_command, request)
        return await self._unary(context, decode, pb_codec.execute_reply)

    async def ExecuteStream(
        self, request: pb.ExecuteRequest, context: Context
    ) -> AsyncIterator[pb.ExecuteEvent]:
        command: models.Command | None = None
        try:
            command = self._admit(
                context, partial(pb_codec.execute_command, request, stream=True)
            )
            # Output is bridged from the core's callback into this generator, in order;
            # None marks the end (the command finished, or shutdown abandoned it).
            chunks: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
            task, done = self._start(command, lambda *chunk: chunks.put_nowait(chunk))
            done.add_done_callback(lambda _: chunks.put_nowait(None))
            while (chunk := await chunks.get()) is not None:
                yield pb_codec.output_event(*chunk)
            yield pb_codec.result_event(self._result(task))
        except BeepHostError as exc:
            await self._fail(context, command, exc)
        except Exception as exc:
            await self._crash(context, command, exc)

    async def OpenSession(
        self, request: pb.OpenSessionRequest, context: Context
    ) -> pb.OpenSessionReply:
        return await self._unary(
            context,
            lambda _: pb_codec.open_session_command(request),
            pb_codec.open_session_reply,
        )

    async def CloseSession(
        self, request: pb.SessionRef, context: Context
    ) -> pb.CloseSessionReply:
        return await self._unary(
            context,
            lambda _: pb_codec.close_session_command(request),
            pb_codec.session_closed_reply,
        )

    async def GetSessionInfo(
        self, request: pb.SessionRef, context: Context
    ) -> pb.SessionInfoReply:
        decode = partial(pb_codec.session_info_command, request)
        return await self._unary(context, decode, pb_codec.session_info_reply)

    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: Context
    ) -> pb.ListSessionsReply:
        return await self._unary(
            context,
            lambda _: pb_codec.list_sessions_command(request),
            pb_codec.session_listing_reply,
        )

    async def Interrupt(
        self, request: pb.SessionRef, context: Context
    ) -> pb.InterruptReply:
        return await self._unary(
            context,
            lambda _: pb_codec.interrupt_command(request),
            pb_codec.interrupt_reply,
        )

    async def CreateObject(
        self, request: pb.CreateObjectRequest, context: Context
    ) -> pb.ValueReply:
        decode = partial(pb_codec.create_object_command, request)
        return await self._unary(context, decode, pb_codec.value_reply)

    async def GetAttribute(
        self, request: pb.GetAttributeRequest, context: Context
    ) -> pb.ValueReply:
        decode = partial(pb_codec.get_attribute_command, request)
        return await self._unary(context, decode, pb_codec.value_reply)

    async def SetAttribute(
        self, request: pb.SetAttributeRequest, context: Context
    ) -> pb.SetAttributeReply:
        decode = partial(pb_codec.set_attribute_command, request)
        return await self._unary(context, decode, pb_codec.set_attribute_reply)

    async def CallMethod(
        self, request: pb.CallMethodRequest, context: Context
    ) -> pb.ValueReply:
        decode = partial(pb_codec.call_method_command, request)
        return await self._unary(context, decode, pb_codec.value_reply)

    async def ReleaseObjects(
        self, request: pb.ReleaseObjectsRequest, context: Context
    ) -> pb.ReleaseObjectsReply:
        decode = partial(pb_codec.release_objects_command, request)
        return await self._unary(context, decode, pb_codec.release_reply)

    async def ListObjects(
        self, request: pb.SessionRef, context: Context
    ) -> pb.ListObjectsReply:
        decode = partial(pb_codec.list_objects_command, request)
        return await self._unary(context, decode, pb_codec.handle_list_reply)

    # -- one path for every unary call --------------------------------------------------

    async def _unary(
        self, context: Context, decode: Decode, encode: Callable[[Result], Reply]
    ) -> Reply:
        command: models.Command | None = None
        try:
            command = self._admit(context, decode)
            task, done = self._start(command)
            await done
            return encode(self._result(task))
        except BeepHostError as exc:
            await self._fail(context, command, exc)
        except Exception as exc:
            await self._crash(context, command, exc)

    def _admit(self, context: Context, decode: Decode) -> models.Command:
        if not self.accepting:
            if self.draining:
                raise Unavailable("the server is shutting down; retry on another")
            raise Unavailable("the server is starting; retry shortly")
        # The call's deadline becomes the command's: the core interrupts the code then.
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise ExecutionTimeout(
                "the call's deadline passed before it started", {"state_lost": False}
            )
        return decode(None if remaining is None else min(remaining, self.max_timeout))

    def _start(
        self,
        command: models.Command,
        on_event: Callable[[str, str], None] | None = None,
    ) -> tuple[asyncio.Task[Result], asyncio.Future[None]]:
        task = asyncio.create_task(self.executor.run(command, on_event))
        done = asyncio.get_running_loop().create_future()
        self.inflight[task] = done
        task.add_done_callback(self._finished)
        return task, done

    def _finished(self, task: asyncio.Task[Result]) -> None:
        done = self.inflight.pop(task)
        if not done.done():
            done.set_result(None)
        if not task.cancelled():
            task.exception()  # retrieved: its handler may be gone (cancelled call)

    def _result(self, task: asyncio.Task[Result]) -> Result:
        if not task.done():  # released by drain() before the command finished
            raise Unavailable(
                "the server shut down before the request finished; its outcome is unknown"
            )
        return task.result()

    async def _fail(
        self, context: Context, command: models.Command | None, error: BeepHostError
    ) -> NoReturn:
        if command is None:  # refused before the core saw it: the core counts the rest
            self.rejected.labels(error.wire_code).inc()
        what = command.COMMAND if command else "call"
        logger.info("%s failed: %s: %s", what, error.wire_code, error.message)
        await errors.abort(context, error)

    async def _crash(
        self, context: Context, command: models.Command | None, exc: Exception
    ) -> NoReturn:
        logger.exception(
            "unexpected error in %s", command.COMMAND if command else "call"
        )
        await errors.abort(context, InternalError(f"{type(exc).__name__}: {exc}"))

    async def drain(self, grace: float) -> None:
        """Refuse new calls, wait up to ``grace`` seconds for running ones, release the rest.

        Released calls are answered ``unavailable``; their commands run on until the
        executor closes.
        """
        self.accepting = False
        self.draining = True
        if self.inflight and grace > 0:
            await asyncio.wait(list(self.inflight), timeout=grace)
        for done in self.inflight.values():
            if not done.done():
                done.set_result(None)
