"""The gRPC transport: ``beephost.exec.v1.Executor`` over grpcio (the ``[grpc]`` extra).

Commands become messages through ``beephost_protocol.pb_codec`` (the one converter);
every call carries a deadline (the command's own, else the client's wait), which the
server turns into the command's deadline. Errors come back as the status plus the
``beephost-error`` trailing metadata; without it (a deadline that passed here, a server
that cannot be reached, a message over gRPC's size limit) the status alone decides.
"""

# ruff: noqa: ASYNC109  # `timeout` is the gRPC deadline of the call

import asyncio
import contextlib
import importlib.metadata
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import grpc
import grpc.aio

from beephost_client._exceptions import (
    ConnectError,
    ConnectionLost,
    InvalidArgument,
    UsageError,
)
from beephost_client._models import OutputChunk, output_of
from beephost_client._timeout import DEFAULT_TIMEOUT, Timeout
from beephost_client._transports import _file_commands as fc
from beephost_client._transports.base import (
    AsyncBaseTransport,
    AsyncStream,
    BaseTransport,
    StreamItem,
    SyncStream,
    new_lease,
)
from beephost_protocol import (
    Command,
    Execute,
    SessionCommand,
    pb_chunks,
    pb_codec,
    pb_files,
)
from beephost_protocol.errors import (
    BeepHostError,
    ExecutionTimeout,
    InternalError,
    TooLarge,
    Unauthorized,
    error_from_wire,
)

try:
    _VERSION = importlib.metadata.version("beephost-client")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source checkout
    _VERSION = "0"

MAX_MESSAGE_BYTES = 256 << 20  # the server enforces its own, smaller, limits
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.primary_user_agent", f"beephost-client/{_VERSION}"),
    # Reconnect soon after a server restart instead of backing off for minutes.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

_CANCEL_WAIT = 1.0  # seconds an abandoned stream may take to confirm its cancellation


def target_of(url: str) -> tuple[str, bool]:
    """``grpc://host:port`` to ``("host:port", tls)``; ``grpc+unix:///abs/path`` to
    ``("unix:/abs/path", False)``.

    Raises:
        ValueError: Not a grpc:// or grpcs:// URL with a host.
    """
    parts = urlsplit(url)
    if parts.scheme == "grpc+unix" and parts.path.startswith("/") and not parts.netloc:
        return f"unix:{parts.path}", False  # gRPC over a Unix socket
    if parts.scheme not in ("grpc", "grpcs") or not parts.hostname:
        raise InvalidArgument(f"not a grpc:// URL with a host: {url!r}")
    tls = parts.scheme == "grpcs"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = parts.port or (443 if tls else 50051)
    return f"{host}:{port}", tls


def call_options(
    command: Command, wait: float, metadata: Sequence[tuple[str, str]]
) -> tuple[float, list[tuple[str, str]]]:
    """The call's gRPC deadline and metadata.

    A command's own deadline travels as ``beephost-timeout`` (the server runs the code
    that long) and the call's deadline is the client's ``wait``, its grace later: so
    when code ignores the interrupt and the server kills it, the server's typed
    ``timeout`` (with ``state_lost``) still arrives, not the client's DEADLINE_EXCEEDED.
    """
    if isinstance(command, SessionCommand) and command.timeout is not None:
        timeout = (pb_codec.TIMEOUT_METADATA_KEY, repr(float(command.timeout)))
        return max(wait, command.timeout), [*metadata, timeout]
    return wait, list(metadata)


def map_error(error: grpc.RpcError, target: str) -> BeepHostError:
    """The exception for a failed call (raise it ``from`` the gRPC error); sans-I/O."""
    call: Any = (
        error  # a grpc.Call (sync) or an AioRpcError: code(), details(), metadata
    )
    code: grpc.StatusCode = call.code()
    mapped = pb_codec.error_from_metadata(call.trailing_metadata())
    if mapped is not None:
        return mapped
    return _from_status(code, str(call.details() or ""), target)


@contextlib.contextmanager
def mapped_errors(target: str) -> Iterator[None]:
    """Raise a gRPC error of the block as :func:`map_error`'s exception, from it."""
    try:
        yield
    except grpc.RpcError as exc:
        raise map_error(exc, target) from exc


def _from_status(code: grpc.StatusCode, details: str, target: str) -> BeepHostError:
    where = {"target": target, "status": code.name}
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ExecutionTimeout(
            f"deadline exceeded ({details})", {**where, "client_side": True}
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        # gRPC says "failed to connect" when the call never left the client.
        if (
            "failed to connect" in details.lower()
            or "connection refused" in details.lower()
        ):
            return ConnectError(f"cannot connect to grpc://{target}: {details}", where)
        return ConnectionLost(f"connection to grpc://{target} lost: {details}", where)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthorized(details or "unauthenticated", where)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        # Without beephost-error this is gRPC's own message-size limit.
        return TooLarge(details or "message too large", where)
    return error_from_wire(
        {"code": f"grpc_{code.name.lower()}", "message": details, "data": where}
    )


def _encode(command: Command) -> tuple[pb_codec.RpcSpec, Any]:
    if command.COMMAND.startswith("file."):
        return pb_files.encode_file_command(command)
    return pb_codec.encode_command(command)


def _decode(spec: pb_codec.RpcSpec, reply: Any) -> dict[str, Any]:
    if spec.method in pb_files.SPECS:
        return pb_files.decode_file_reply(spec, reply)
    return pb_codec.decode_reply(spec, reply)


def _upload_messages(file: fc.Upload, chunks: Iterable[bytes]) -> Iterator[Any]:
    yield pb_files.upload_request(file.path, file.overwrite, file.size)
    for chunk in chunks:
        for piece in fc.pieces(chunk) if chunk else ():
            yield pb_chunks.encode_data(piece)  # protobuf's runtime would copy it twice
    yield pb_files.end_request()


def _chunk_data(chunk: Any) -> bytes:
    """A download's message: bytes read by hand (``pb_chunks``), or a ``FileChunk``."""
    return chunk if isinstance(chunk, bytes) else chunk.data


def _metadata(token: str | None, lease: str) -> tuple[tuple[str, str], ...]:
    lease_metadata = (pb_codec.LEASE_METADATA_KEY, lease)
    if token:
        return (("authorization", f"Bearer {token}"), lease_metadata)
    return (lease_metadata,)


def _chunk(event: Any) -> StreamItem:
    item = pb_codec.decode_event(event)
    if isinstance(item, dict):
        return item
    stream, data = item
    if stream == "display":
        return output_of(data)
    return OutputChunk(stream, data)


async def _settle(call: Any) -> None:
    """Cancel a grpc.aio call unless it finished, and consume the cancellation on this
    loop: left pending, grpc's poller delivers it later to whatever loop runs then (or
    to a closed one)."""
    if not call.done():
        call.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(call.code(), _CANCEL_WAIT)


class _GRPCChannel:
    """What both gRPC transports share: target, options, lease, and one call per method.

    The arguments are documented on :class:`GRPCTransport`.
    """

    lease: str | None

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        options: list[tuple[str, Any]] | None = None,
    ) -> None:
        self.target, self._tls = target_of(url)
        self._options = CHANNEL_OPTIONS + list(options or [])
        self.lease = new_lease()
        self._metadata = _metadata(token, self.lease)
        self._calls: dict[str, Any] = {}
        self._open()

    def _open(self) -> None:
        """Create the channel now, or get ready to create it on first use."""
        raise NotImplementedError

    def _new_channel(self, api: Any) -> Any:
        """A channel to the target from ``api``: the ``grpc`` or ``grpc.aio`` module."""
        if self._tls:
            credentials = grpc.ssl_channel_credentials()
            return api.secure_channel(self.target, credentials, self._options)
        return api.insecure_channel(self.target, self._options)

    def _callable(self, spec: pb_codec.RpcSpec) -> Any:
        """The call object of ``spec``'s method, made on first use."""
        raise NotImplementedError

    def _start_download(self, path: str, offset: int, length: int | None) -> Any:
        """A started ``DownloadFile`` call (no deadline: a transfer takes what it takes)."""
        request = pb_files.download_request(path, offset, length)
        call = self._callable(pb_files.SPECS["DownloadFile"])
        return call(request, metadata=self._metadata)

    def _start_stream(self, command: Execute, timeout: float) -> Any:
        """A started streamed ``exec`` call, under the command's deadline."""
        spec, request = _encode(command)
        deadline, metadata = call_options(command, timeout, self._metadata)
        return self._callable(spec)(request, timeout=deadline, metadata=metadata)

    def _new_upload(self, channel: Any) -> Any:
        call = channel.stream_unary(
            pb_files.UPLOAD_PATH,
            request_serializer=pb_chunks.serialize,  # data messages encoded already
            response_deserializer=pb_files.UPLOAD_REPLY.FromString,
        )
        self._calls["UploadFile"] = call
        return call

    def _new_call(self, channel: Any, spec: pb_codec.RpcSpec) -> Any:
        factory = channel.unary_stream if spec.streaming else channel.unary_unary
        call = factory(
            spec.path,
            request_serializer=spec.request.SerializeToString,
            response_deserializer=spec.parse_reply,
        )
        self._calls[spec.method] = call
        return call


class GRPCTransport(_GRPCChannel, BaseTransport):
    """Blocking transport for ``grpc://host:port`` (and ``grpcs://`` with TLS).

    Args:
        url: The backend's URL.
        token: The server's token, sent as ``authorization: Bearer`` metadata.
        timeout: Accepted for symmetry; gRPC connects within each call's deadline.
        options: Extra gRPC channel options.
    """

    def _open(self) -> None:
        self._channel = self._new_channel(grpc)

    def _callable(self, spec: pb_codec.RpcSpec) -> Any:
        call = self._calls.get(spec.method)
        return call if call is not None else self._new_call(self._channel, spec)

    def handle(self, command: Command, *, timeout: float) -> dict[str, Any]:
        spec, request = _encode(command)
        with mapped_errors(self.target):
            deadline, metadata = call_options(command, timeout, self._metadata)
            reply = self._callable(spec)(request, timeout=deadline, metadata=metadata)
        return _decode(spec, reply)

    def upload(
        self, file: fc.Upload, chunks: Iterable[bytes], *, timeout: float
    ) -> dict[str, Any]:
        """``UploadFile``: the header, then the chunks as they come (the call has no
        deadline: a transfer takes what it takes; gRPC's keepalive watches the peer)."""
        call = self._calls.get("UploadFile") or self._new_upload(self._channel)
        messages = _upload_messages(file, chunks)
        with mapped_errors(self.target):
            reply = call(messages, metadata=self._metadata)
        return pb_files.file_info(reply)

    def download(
        self, path: str, *, offset: int, length: int | None, timeout: float
    ) -> Iterator[bytes]:
        """``DownloadFile``: the file's chunks as they arrive."""
        call = self._start_download(path, offset, length)
        try:
            with mapped_errors(self.target):
                for chunk in call:
                    if data := _chunk_data(chunk):
                        yield data
        finally:
            call.cancel()  # a no-op once it finished; abandons it otherwise

    def stream(self, command: Execute, *, timeout: float) -> SyncStream:
        call = self._start_stream(command, timeout)
        try:
            with mapped_errors(self.target):
                for event in call:
                    item = _chunk(event)
                    yield item
                    if isinstance(item, dict):
                        return
        finally:
            call.cancel()  # a no-op once it finished; abandons it otherwise
        raise InternalError("the stream ended without a result")

    def close(self) -> None:
        self._channel.close()


class AsyncGRPCTransport(_GRPCChannel, AsyncBaseTransport):
    """Asyncio transport for ``grpc://``; the twin of :class:`GRPCTransport` (the
    same arguments).

    The ``grpc.aio`` channel is created on first use, inside the running event loop.
    """

    def _open(self) -> None:
        self._channel: grpc.aio.Channel | None = None
        self._blocking_channel: grpc.Channel | None = None
        self._closed = False

    def _callable(self, spec: pb_codec.RpcSpec) -> Any:
        call = self._calls.get(spec.method)
        return call if call is not None else self._new_call(self._opened(), spec)

    def _opened(self) -> grpc.aio.Channel:
        if self._closed:
            raise UsageError("the transport is closed")
        if self._channel is None:
            self._channel = self._new_channel(grpc.aio)
        return self._channel

    async def handle_async(self, command: Command, *, timeout: float) -> dict[str, Any]:
        spec, request = _encode(command)
        with mapped_errors(self.target):
            deadline, metadata = call_options(command, timeout, self._metadata)
            reply = await self._callable(spec)(
                request, timeout=deadline, metadata=metadata
            )
        return _decode(spec, reply)

    async def upload_async(
        self, file: fc.Upload, chunks: AsyncIterable[bytes], *, timeout: float
    ) -> dict[str, Any]:
        """Async twin of :meth:`GRPCTransport.upload`, on a blocking channel in a
        thread: when the server ends a client stream early (a refused path, the
        quota), grpc.aio reports INTERNAL "Internal error from Core" instead of the
        server's status if a write was under way (grpc/grpc#36066); the blocking API
        keeps the status. The chunks still come from this event loop."""
        loop = asyncio.get_running_loop()
        source = aiter(chunks)
        failed: list[BaseException] = []

        async def next_chunk() -> bytes:
            return await anext(source)

        def pulled() -> Iterator[bytes]:
            while True:
                try:
                    chunk = asyncio.run_coroutine_threadsafe(
                        next_chunk(), loop
                    ).result()
                except StopAsyncIteration:
                    return
                except BaseException as exc:  # re-raised below, not as CANCELLED
                    failed.append(exc)
                    raise
                yield chunk

        call = self._calls.get("UploadFile") or self._new_upload(self._blocking())
        messages = _upload_messages(file, pulled())
        future = call.future(messages, metadata=self._metadata)
        try:
            reply = await asyncio.to_thread(future.result)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except grpc.RpcError as exc:
            if failed:
                raise failed[0] from None
            raise map_error(exc, self.target) from exc
        return pb_files.file_info(reply)

    def _blocking(self) -> grpc.Channel:
        """The blocking channel uploads use (see :meth:`upload_async`)."""
        if self._closed:
            raise UsageError("the transport is closed")
        if self._blocking_channel is None:
            self._blocking_channel = self._new_channel(grpc)
        return self._blocking_channel

    async def download_async(
        self, path: str, *, offset: int, length: int | None, timeout: float
    ) -> AsyncIterator[bytes]:
        """Async twin of :meth:`GRPCTransport.download`."""
        call = self._start_download(path, offset, length)
        try:
            with mapped_errors(self.target):
                async for chunk in call:
                    if data := _chunk_data(chunk):
                        yield data
        finally:
            await _settle(call)

    async def stream_async(self, command: Execute, *, timeout: float) -> AsyncStream:
        call = self._start_stream(command, timeout)
        try:
            with mapped_errors(self.target):
                async for event in call:
                    item = _chunk(event)
                    yield item
                    if isinstance(item, dict):
                        return
        finally:
            await _settle(call)
        raise InternalError("the stream ended without a result")

    async def aclose(self) -> None:
        self._closed = True
        self._calls.clear()
        if self._blocking_channel is not None:
            blocking, self._blocking_channel = self._blocking_channel, None
            blocking.close()
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close(None)
