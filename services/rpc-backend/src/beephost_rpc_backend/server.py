"""The grpc.aio server: Executor service, standard health, reflection, auth, limits, drain."""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from beephost_core import Executor
from beephost_core.listeners import SOCKET_MODE, prepare_socket_path
from beephost_pb.exec.v1 import exec_pb2_grpc
from beephost_protocol import pb_chunks, pb_codec
from beephost_protocol.errors import BeepHostError
from beephost_rpc_backend import health, reflection
from beephost_rpc_backend.auth import Interceptor, TokenAuth
from beephost_rpc_backend.handler_table import HandlerTable
from beephost_rpc_backend.servicer import ExecutorServicer, tolerant
from beephost_rpc_backend.settings import Settings

if TYPE_CHECKING:
    from beephost_rpc_backend.auth import Handler

logger = logging.getLogger(__name__)

SERVICE_NAME = pb_codec.SERVICE_NAME
HEALTH_SERVICE_NAME = health.SERVICE_NAME
SERVING = health.SERVING
NOT_SERVING = health.NOT_SERVING

_HEALTH_INTERVAL = 1.0  # seconds between checks of the executor's readiness
_STOP_GRACE = 1.0  # after the drain, for released calls to send their answers
# What a stream may have sent that its handler has not read yet, whatever the link: the
# receive window. By default grpc sizes it from its BDP probe, and under low memory
# pressure to max(4 MiB, 2 x BDP) rounded up to a power of two (chttp2 flow_control.cc),
# so a long-RTT or stalled link grows it to 64-256 MiB and an upload's unread chunks pile
# up in the server. Four 1 MiB chunks keep an upload streaming; a larger message (up to
# max_request_bytes) still arrives, as grpc opens the window to a read's whole message.
RECEIVE_WINDOW_BYTES = 4 << 20


class RpcServer:
    """The gRPC server and its lifecycle; build it with :func:`create_server`.

    ``start()`` listens with health NOT_SERVING and calls answered ``unavailable``;
    ``ready()`` opens the service once the executor has started; ``shutdown()`` drains.
    """

    def __init__(self, settings: Settings, executor: Executor) -> None:
        self.settings = settings
        self.executor = executor
        self.servicer = ExecutorServicer(
            executor, settings.max_timeout, executor.metrics.tallies
        )
        self.health = health.LazyHealth()
        interceptors: list[Interceptor] = []
        token_check = settings.token_check()
        if token_check is not None:
            interceptors.append(
                TokenAuth(
                    token_check,
                    open_services=(HEALTH_SERVICE_NAME, *reflection.SERVICE_NAMES),
                    on_reject=self._refused,
                )
            )
        self.grpc = grpc.aio.server(
            interceptors=interceptors or None,
            options=[
                ("grpc.max_receive_message_length", settings.max_request_bytes),
                ("grpc.max_send_message_length", settings.max_reply_bytes()),
                # Linux allows several servers on one port with SO_REUSEPORT, which
                # grpc sets by default: a second instance would start silently.
                ("grpc.so_reuseport", 0),
                ("grpc.http2.bdp_probe", 0),
                ("grpc.http2.lookahead_bytes", RECEIVE_WINDOW_BYTES),
            ],
        )
        # The token check runs before the handler: a malformed request without the
        # token is refused `unauthorized` like any other.
        _add_executor(self.grpc, self.servicer)
        self.grpc.add_generic_rpc_handlers((self.health,))
        reflection.enable(
            self.grpc,
            (SERVICE_NAME, HEALTH_SERVICE_NAME),
            descriptors=(health.MESSAGES_MODULE,),
        )
        self._watcher: asyncio.Task[None] | None = None

    def _refused(self, method: str, error: BeepHostError, peer: str) -> None:
        self.servicer.rejected.labels(error.wire_code).inc()
        # The reason says missing or invalid, never the token presented.
        logger.warning(
            "refused %s from peer %s: %s: %s",
            method,
            peer,
            error.wire_code,
            error.message,
        )

    def bind(self) -> int:
        """Bind the configured address; returns the port (the real one for port 0).

        Raises:
            RuntimeError: The address cannot be bound (in use, or not local).
        """
        host = self.settings.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 literal
        port = self.grpc.add_insecure_port(f"{host}:{self.settings.port}")
        if self.settings.socket_path is not None:
            # The Unix socket too: the controller's way in from its own container.
            prepare_socket_path(self.settings.socket_path)
            self.grpc.add_insecure_port(f"unix:{self.settings.socket_path}")
        return port

    async def start(self) -> None:
        await self._set_health(NOT_SERVING)
        await self.grpc.start()
        if self.settings.socket_path is not None:
            # gRPC makes the socket with the umask's mode: its group (the socket
            # directory's, the controller's) must be able to connect.
            self.settings.socket_path.chmod(SOCKET_MODE)

    async def ready(self) -> None:
        """Accept calls; health follows the executor's readiness from now on."""
        self.servicer.open()
        await self._sync_health()
        self._watcher = asyncio.create_task(self._watch_executor())

    async def shutdown(self, drain_timeout: float) -> None:
        """Report NOT_SERVING, refuse new calls, drain the running ones, stop.

        Calls still running after ``drain_timeout`` are answered ``unavailable``.
        """
        # Order matters: probes and load balancers must see NOT_SERVING while the
        # server still answers, so the health service is switched before draining.
        await self.health.enter_graceful_shutdown()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.servicer.drain(drain_timeout)
        await self.grpc.stop(_STOP_GRACE)

    async def _watch_executor(self) -> None:
        while True:
            await asyncio.sleep(_HEALTH_INTERVAL)
            await self._sync_health()

    async def _sync_health(self) -> None:
        ready = self.servicer.accepting and self.executor.ready
        await self._set_health(SERVING if ready else NOT_SERVING)

    async def _set_health(self, status: int) -> None:
        for service in ("", SERVICE_NAME):
            await self.health.set(service, status)


def _add_executor(server: grpc.aio.Server, servicer: ExecutorServicer) -> None:
    """Register the Executor service with tolerant deserializers: a request that is not
    its method's message reaches the servicer, which answers it ``invalid_request``
    (gRPC itself would answer UNKNOWN, untyped). Done once here rather than by an
    interceptor, which grpc.aio would run on every call."""
    table = HandlerTable()
    stand_in: Any = table  # typed as a server by the generated code's stubs
    exec_pb2_grpc.add_ExecutorServicer_to_server(servicer, stand_in)
    if not table.tables:
        raise RuntimeError("the generated code registered no handler table")
    for service, handlers in table.tables.items():
        tolerant_handlers: dict[str, Handler] = {}
        for name, handler in handlers.items():
            # grpc's handlers are named tuples (grpc-stubs types them as abstract).
            named: Any = handler
            decode = tolerant(handler.request_deserializer or (lambda raw: raw))
            changes = {"request_deserializer": decode, **_chunk_codecs(name, decode)}
            tolerant_handlers[name] = named._replace(**changes)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, tolerant_handlers),)
        )
        registered: Any = server  # grpc-stubs 1.53 predates registered methods
        registered.add_registered_method_handlers(service, tolerant_handlers)


def _chunk_codecs(method: str, decode: Callable[[bytes], Any]) -> dict[str, Any]:
    """What a file stream's handler changes so that the messages carrying bytes skip
    protobuf's runtime (``pb_chunks``): an upload's data messages are read by hand
    (others by ``decode``), a download's chunks after the first sent encoded."""
    if method == "UploadFile":
        return {"request_deserializer": pb_chunks.data_or(decode)}
    if method == "DownloadFile":
        return {"response_serializer": pb_chunks.serialize}
    return {}


def create_server(settings: Settings, executor: Executor) -> tuple[RpcServer, int]:
    """Build the server and bind ``settings.host:settings.port``; call within a loop.

    Returns:
        The server (not yet started) and the port it bound.
    """
    server = RpcServer(settings, executor)
    return server, server.bind()
