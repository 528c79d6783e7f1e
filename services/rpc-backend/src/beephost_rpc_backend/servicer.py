"""The Executor service: decode with pb_codec, run in the core, encode; errors map once."""

from __future__ import annotations  # grpc's classes are generic only in grpc-stubs

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc
from google.protobuf.message import DecodeError

from beephost_core import Executor
from beephost_core.tallies import Tallies
from beephost_core.transfers import FileReader, Upload, WriteBehind, first_read
from beephost_pb.exec.v1 import exec_pb2 as pb
from beephost_pb.exec.v1 import exec_pb2_grpc
from beephost_protocol import files, models, pb_chunks, pb_codec, pb_files
from beephost_protocol.errors import (
    BeepHostError,
    ExecutionTimeout,
    InternalError,
    InvalidRequest,
    Unavailable,
    operator_note,
)
from beephost_rpc_backend import errors

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]
Request = TypeVar("Request")
Reply = TypeVar("Reply")
Result = dict[str, Any]
Decode = Callable[[Request, float | None], models.Command]

# Seconds of a call's deadline kept back for the reply to travel.
_DEADLINE_MARGIN = 0.25


def asked_timeout(metadata: Iterable[Any] | None) -> float | None:
    """The command's deadline the client sent as ``beephost-timeout``, if any.

    Raises:
        InvalidRequest: Not one finite number of seconds > 0.
    """
    values = [v for k, v in metadata or () if k == pb_codec.TIMEOUT_METADATA_KEY]
    if not values:
        return None
    try:
        if len(values) > 1:
            raise ValueError("given twice")
        seconds = float(values[0])
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError("not a finite number > 0")
    except ValueError as exc:
        raise InvalidRequest(
            f"metadata {pb_codec.TIMEOUT_METADATA_KEY} must be one number of seconds "
            f"> 0: {exc}"
        ) from None
    return seconds


def asked_lease(metadata: Iterable[Any] | None) -> str | None:
    """The client's lease, sent as ``beephost-lease`` metadata, if any (checked by the core).

    Raises:
        InvalidRequest: Given more than once.
    """
    values = [v for k, v in metadata or () if k == pb_codec.LEASE_METADATA_KEY]
    if len(values) > 1:
        raise InvalidRequest(f"metadata {pb_codec.LEASE_METADATA_KEY} given twice")
    return str(values[0]) if values else None


class MalformedRequest:
    """What a request that is not its method's protobuf message deserializes to.

    gRPC answers a deserializer that raises with UNKNOWN and no ``beephost-error``;
    :func:`tolerant` hands this to the servicer instead, which answers
    ``invalid_request`` (and the token check, which runs first, ``unauthorized``).
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason


def tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """``deserialize``, returning a :class:`MalformedRequest` instead of raising."""

    def decode(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except DecodeError as exc:
            return MalformedRequest(str(exc))

    return decode


def _unary(decode: Decode[Request], encode: Callable[[Result], Reply]) -> Any:
    """A unary RPC: decode the request, run the command in the core, encode the result.

    Returns Any: mypy checks a callable class attribute against the base class's method
    as if it were unbound, and rejects it; the integration tests call every RPC.
    """

    async def rpc(self: ExecutorServicer, request: Request, context: Context) -> Reply:
        return await self._call(context, decode, request, encode)

    return rpc


class ExecutorServicer(exec_pb2_grpc.ExecutorServicer):
    """``beephost.exec.v1.Executor`` over one core Executor.

    A unary call runs its command in its handler's task (a task of its own would cost
    two more loop turns per call). When the client cancels, goes away or its deadline
    passes, gRPC cancels the handler, which cancels the command: the core interrupts
    its code (and kills a worker that ignores the interrupt after the grace) before the
    session takes its next request. A drain that runs out cancels the handlers still
    running the same way and answers them ``unavailable``. A streamed execution runs in
    a task of its own, which the drain releases without cancelling.
    """

    def __init__(
        self, executor: Executor, max_timeout: float, tallies: Tallies
    ) -> None:
        self.executor = executor
        self.max_timeout = max_timeout
        self.accepting = False  # set once the executor has started; cleared on drain
        self.draining = False
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's, once open
        # Streamed commands, each with the future its handler waits on.
        self.inflight: dict[asyncio.Task[Result], asyncio.Future[None]] = {}
        # Handlers of unary calls running their commands; those a drain cancelled.
        self.handlers: set[asyncio.Task[Any]] = set()
        self.released: set[asyncio.Task[Any]] = set()
        self.rejected = tallies.counter(
            "beephost_grpc_rejected_requests",
            "Calls answered with an error before reaching the core, by code.",
            ["code"],
        )

    # -- the RPCs: a decoder and an encoder each (pb_codec), one path for all ------------

    Evaluate = _unary(pb_codec.evaluate_command, pb_codec.value_reply)
    Execute = _unary(pb_codec.execute_command, pb_codec.execute_reply)
    OpenSession = _unary(pb_codec.open_session_command, pb_codec.open_session_reply)
    CloseSession = _unary(pb_codec.close_session_command, pb_codec.session_closed_reply)
    GetSessionInfo = _unary(pb_codec.session_info_command, pb_codec.session_info_reply)
    ListSessions = _unary(
        pb_codec.list_sessions_command, pb_codec.session_listing_reply
    )
    Interrupt = _unary(pb_codec.interrupt_command, pb_codec.interrupt_reply)
    CreateObject = _unary(pb_codec.create_object_command, pb_codec.value_reply)
    GetAttribute = _unary(pb_codec.get_attribute_command, pb_codec.value_reply)
    SetAttribute = _unary(pb_codec.set_attribute_command, pb_codec.set_attribute_reply)
    CallMethod = _unary(pb_codec.call_method_command, pb_codec.value_reply)
    ReleaseObjects = _unary(pb_codec.release_objects_command, pb_codec.release_reply)
    ListObjects = _unary(pb_codec.list_objects_command, pb_codec.handle_list_reply)
    RenewLease = _unary(pb_codec.renew_lease_command, pb_codec.renew_lease_reply)
    ReleaseLease = _unary(pb_codec.release_lease_command, pb_codec.release_lease_reply)
    StatFile = _unary(pb_files.stat_file_command, pb_files.file_info_reply)
    ListFiles = _unary(pb_files.list_files_command, pb_files.file_listing_reply)
    MakeDirectory = _unary(pb_files.make_directory_command, pb_files.file_info_reply)
    RemoveFile = _unary(pb_files.remove_file_command, pb_files.file_removed_reply)
    RenameFile = _unary(pb_files.rename_file_command, pb_files.file_info_reply)
    GetWorkspaceUsage = _unary(pb_files.usage_command, pb_files.usage_reply)

    async def UploadFile(
        self, requests: AsyncIterator[Any], context: Context
    ) -> pb.FileInfo:
        """Write the streamed bytes under a temporary name; put the file in place at
        the stream's end. Any failure or cancellation on the way leaves nothing."""
        upload: Upload | None = None
        try:
            self._check_accepting()
            first = await anext(aiter(requests), None)
            opening, digest = pb_files.upload_header(first)
            upload = await asyncio.to_thread(
                self.executor.workspace.begin_upload,
                opening.path,
                overwrite=opening.overwrite,
                size=opening.size,
            )
            ended = False
            behind = WriteBehind(upload)  # a chunk written while the next arrives
            try:
                with self.executor.activity.request():  # a long upload keeps it busy
                    async for request in requests:
                        chunk = pb_files.upload_data(request)
                        if ended:
                            raise InvalidRequest("UploadFile: a message after end")
                        if chunk is None:
                            ended = True
                        else:
                            await behind.write((chunk,))
                    await behind.flush()
            finally:
                behind.forget()
            if not ended:
                # A cancelled call can end the stream here as if it were closed.
                raise InvalidRequest(
                    "UploadFile ended without its end message: nothing was written"
                )
            info = await asyncio.to_thread(upload.commit, digest)
            return pb_files.file_info_reply(info.model_dump(mode="json"))
        except Exception as exc:
            await self._abort(context, None, exc)
        finally:
            if upload is not None:
                upload.abort()  # a no-op once committed; quick, so it runs when cancelled

    async def DownloadFile(  # type: ignore[override]  # bytes: encoded chunks
        self, request: pb.DownloadFileRequest, context: Context
    ) -> AsyncIterator[pb.FileChunk | bytes]:
        """The file's bytes in chunks; each is read once the previous one was taken
        (gRPC's flow control), so the file is never held whole. The chunks after the
        first go out encoded already (``pb_chunks``: registered with its serializer
        in ``server._add_executor``). Every chunk is of one
        version of the file: one that changes after the first chunk went out ends
        the call with ``conflict`` (see ``FileReader``)."""
        reader: FileReader | None = None
        try:
            self._check_accepting()
            path, offset, length = pb_files.download_range(request)
            opened, first = await asyncio.to_thread(
                first_read,
                lambda: self.executor.workspace.open_reader(path),
                lambda opening: opening.read(
                    offset, _first_length(opening, offset, length)
                ),
            )
            reader = opened
            end = opened.size if length is None else min(opened.size, offset + length)
            with self.executor.activity.request():  # a long download keeps it busy
                async for chunk in _file_chunks(opened, first, offset, end):
                    yield chunk
        except Exception as exc:
            await self._abort(context, None, exc)
        finally:
            if reader is not None:
                reader.close()

    def open(self) -> None:
        """Accept calls (the executor has started)."""
        # Kept: on Python 3.11 each lookup of the running loop is a getpid() call.
        self.loop = asyncio.get_running_loop()
        self.accepting = True

    def _check_accepting(self) -> None:
        """Unavailable while the server starts or drains (the client retries)."""
        if not self.accepting:
            raise Unavailable(
                "the server is shutting down; retry on another"
                if self.draining
                else "the server is starting; retry shortly"
            )

    async def ExecuteStream(
        self, request: pb.ExecuteRequest, context: Context
    ) -> AsyncIterator[pb.ExecuteEvent]:
        command: models.Command | None = None
        task: asyncio.Task[Result] | None = None
        try:
            command, metadata = self._admit(
                context, pb_codec.execute_stream_command, request
            )
            lease = asked_lease(metadata)
            # Output is bridged from the core's callback into this generator, in order;
            # None marks the end (the command finished, or shutdown abandoned it).
            chunks: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()
            task, done = self._start(
                command, lambda *chunk: chunks.put_nowait(chunk), lease
            )
            done.add_done_callback(lambda _: chunks.put_nowait(None))
            while (chunk := await chunks.get()) is not None:
                yield pb_codec.output_event(*chunk)
            yield pb_codec.result_event(self._result(task))
        except (asyncio.CancelledError, GeneratorExit):
            if task is not None:
                task.cancel()  # the call was cancelled: the core interrupts the code
            raise
        except Exception as exc:
            await self._abort(context, command, exc)

    async def _call(
        self,
        context: Context,
        decode: Decode[Request],
        request: Request,
        encode: Callable[[Result], Reply],
    ) -> Reply:
        command: models.Command | None = None
        handler = asyncio.current_task(self.loop)
        assert handler is not None  # grpc runs each call in a task
        try:
            command, metadata = self._admit(context, decode, request)
            self.handlers.add(handler)
            try:
                result = await self.executor.run(command, lease=asked_lease(metadata))
            finally:
                self.handlers.discard(handler)
            return encode(result)
        except BaseException as caught:
            if handler in self.released:
                # A drain ran out and cancelled it; the core stopped its code (or
                # killed a worker that ignored the interrupt, hence BaseException).
                self.released.discard(handler)
                handler.uncancel()
                await self._abort(context, command, _unknown_outcome())
            if not isinstance(caught, Exception):
                raise  # cancelled by gRPC (the client's doing): no one to answer
            await self._abort(context, command, caught)

    def _admit(
        self, context: Context, decode: Decode[Request], request: Request
    ) -> tuple[models.Command, Any]:
        """The call's command, and its metadata (read once: each read converts it)."""
        self._check_accepting()
        if isinstance(request, MalformedRequest):
            raise InvalidRequest(
                f"the request is not a valid protobuf message: {request.reason}"
            )
        # The call's deadline becomes the command's: the core interrupts the code then.
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise ExecutionTimeout(
                "the call's deadline passed before it started", {"state_lost": False}
            )
        timeout = None
        if remaining is not None:
            # Interrupt a little before the client gives up, so that the structured
            # timeout (with state_lost) reaches the client, not its DEADLINE_EXCEEDED.
            margin = min(_DEADLINE_MARGIN, remaining * 0.1)
            timeout = min(remaining - margin, self.max_timeout)
        metadata = context.invocation_metadata()
        asked = asked_timeout(metadata)
        if asked is not None:  # the command's own deadline, before the call's
            timeout = asked if timeout is None else min(asked, timeout)
        try:
            command = decode(request, timeout)
        except RecursionError:  # json's C scanner recurses: a depth bomb in *_json
            raise InvalidRequest("a JSON field is nested too deeply") from None
        return command, metadata

    def _start(
        self,
        command: models.Command,
        on_event: Callable[[str, Any], None] | None = None,
        lease: str | None = None,
    ) -> tuple[asyncio.Task[Result], asyncio.Future[None]]:
        run = self.executor.run(command, on_event, lease=lease)
        task = asyncio.create_task(run)
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
            raise _unknown_outcome()
        return task.result()

    async def _abort(
        self, context: Context, command: models.Command | None, exc: Exception
    ) -> NoReturn:
        """End the call with ``exc``: its own code for an error of the taxonomy, else
        ``internal`` (a bug of ours: the core wraps what user code raises)."""
        if isinstance(exc, BeepHostError):
            await self._fail(context, command, exc)
        await self._crash(context, command, exc)

    async def _fail(
        self, context: Context, command: models.Command | None, error: BeepHostError
    ) -> NoReturn:
        if command is None:  # refused before the core saw it: the core counts the rest
            self.rejected.labels(error.wire_code).inc()
        what = command.COMMAND if command else "call"
        note = operator_note(error, getattr(command, "session", None))
        if note is not None:  # a worker died or was killed: the operator hears of it
            logger.warning("%s (%s from peer %s)", note, what, context.peer())
        else:
            logger.info("%s failed: %s: %.300s", what, error.wire_code, error.message)
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

        Released calls are answered ``unavailable``: a unary call once the core has
        interrupted its code (as when its client cancels); a streamed execution at
        once, its command running on until the executor closes.
        """
        self.accepting = False
        self.draining = True
        running = [*self.inflight, *self.handlers]
        if running and grace > 0:
            await asyncio.wait(running, timeout=grace)
        for done in self.inflight.values():
            if not done.done():
                done.set_result(None)
        stuck = list(self.handlers)
        for handler in stuck:
            self.released.add(handler)
            handler.cancel()
        if stuck:  # each answers once its code stopped, or its worker was killed
            await asyncio.wait(stuck, timeout=self.executor.config.kill_grace + 1)


def _unknown_outcome() -> Unavailable:
    return Unavailable(
        "the server shut down before the request finished; its outcome is unknown"
    )


def _first_length(reader: FileReader, offset: int, length: int | None) -> int:
    end = reader.size if length is None else min(reader.size, offset + length)
    return max(0, min(files.MAX_CHUNK_BYTES, end - offset))


async def _file_chunks(
    reader: FileReader, first: bytes, offset: int, end: int
) -> AsyncIterator[pb.FileChunk | bytes]:
    """``reader``'s bytes from ``offset`` to ``end``, ``first`` read already; the
    first chunk carries the file's info (and is sent even for an empty range)."""
    yield pb_files.first_chunk(reader.info, first)
    offset += len(first)
    while first and offset < end:
        size = min(files.MAX_CHUNK_BYTES, end - offset)
        read, chunk = await asyncio.to_thread(_encoded_read, reader, offset, size)
        if not read:
            return  # cannot happen unchanged: a shrunk file fails its read
        offset += read
        yield chunk


def _encoded_read(reader: FileReader, offset: int, size: int) -> tuple[int, bytes]:
    """Up to ``size`` bytes from ``offset``: how many, and the ``FileChunk`` that
    carries them, encoded already (on the reading thread, not the loop)."""
    data = reader.read(offset, size)
    return len(data), pb_chunks.encode_data(data)
