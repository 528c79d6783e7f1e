"""The asyncio client: AsyncClient, its sessions, remote objects and streams.

This file is the source of ``beephost_client/_sync/_client.py``, which
``packages/client/scripts/unasync.py`` generates from it (a test checks that the two
agree). Edit this one, then run ``uv run python packages/client/scripts/unasync.py``.
"""

# ruff: noqa: ASYNC109  # `timeout` is the server-side deadline, sent with the request

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any, Self

from beephost_client import _base
from beephost_client._async._files import AsyncFiles
from beephost_client._async._scoped import AsyncScoped
from beephost_client._config import make_async_transport
from beephost_client._exceptions import InvalidArgument, UsageError
from beephost_client._models import (
    ExecResult,
    Output,
    OutputChunk,
    SessionDescription,
    output_of,
)
from beephost_client._timeout import DEFAULT_TIMEOUT, Timeout
from beephost_client._transports.base import AsyncBaseTransport, AsyncStream
from beephost_protocol import DEFAULT_SESSION, Command, Execute, Handle
from beephost_protocol.errors import BeepHostError, InternalError, NotFound, SessionLost

from . import _lease, _sugar

logger = logging.getLogger("beephost_client")

OutputCallback = Callable[[OutputChunk | Output], object]


class _AsyncSessionOps:
    """The operations of one session; ``AsyncClient`` runs them in ``default``."""

    _client: "AsyncClient"
    _default_timeout: float | None = None

    def _session_id(self) -> str:
        raise NotImplementedError

    async def evaluate(
        self,
        expression: str,
        *,
        locals: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Evaluate one expression and return its value.

        Args:
            expression: A Python expression, evaluated in the session's namespace.
            locals: Extra names visible to this expression only; values are sent
                losslessly, remote objects as themselves.
            timeout: Deadline in seconds for this call (default: the session's).

        Returns:
            The value: data by value, anything else as an :class:`AsyncRemoteObject`.

        Raises:
            ExecutionFailed: The expression raised; the remote type, message and
                traceback are in ``remote_type``, ``message``, ``remote_traceback``.
            ExecutionTimeout: The deadline passed.
            BeepHostError: Any other error of the taxonomy.

        Example::

            async with beephost_client.aconnect("http://127.0.0.1:5678") as client:
                assert await client.evaluate("x * 2", locals={"x": 21}) == 42
        """
        client, sid = self._client, self._session_id()
        deadline = client._deadline(timeout, self._default_timeout)
        command = client._evaluate(sid, expression, locals, deadline)
        return client._value(await client._request(command, deadline), sid)

    async def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecResult:
        """Run statements; a trailing expression's value is returned, as in a notebook.

        Args:
            code: Python statements; the names they bind stay in the session.
            timeout: Deadline in seconds for this call (default: the session's).
            on_output: If given, output is streamed: called with each
                :class:`OutputChunk` and rich :class:`Output` as it arrives; the
                result's ``stdout`` and ``stderr`` are then empty (its ``outputs``
                still hold every rich output).

        Returns:
            An :class:`ExecResult` with ``stdout``, ``stderr`` and ``value``.

        Raises:
            ExecutionFailed: The code raised (output so far is in ``data``).
            ExecutionTimeout: The deadline passed.
            BeepHostError: Any other error of the taxonomy.

        Example::

            result = await client.execute("print('hi')\\n6 * 7")
            assert (result.stdout, result.value) == ("hi\\n", 42)
        """
        if on_output is not None:
            async with self.stream(code, timeout=timeout) as events:
                async for chunk in events:
                    on_output(chunk)
            return events.result
        client, sid = self._client, self._session_id()
        deadline = client._deadline(timeout, self._default_timeout)
        command = client._execute(sid, code, deadline, stream=False)
        return client._exec_result(await client._request(command, deadline), sid)

    def stream(self, code: str, *, timeout: float | None = None) -> "AsyncExecStream":
        """Run statements and iterate over their output as it is produced.

        Nothing is sent until iteration starts. After the last chunk, the stream's
        ``result`` holds the :class:`ExecResult`. Leaving the ``async with`` block
        early abandons the request: the server interrupts the code, as at a deadline.

        Args:
            code: Python statements.
            timeout: Deadline in seconds for the whole run (default: the session's).

        Returns:
            An :class:`AsyncExecStream` of :class:`OutputChunk` and, for
            ``display()`` calls and plots, :class:`Output`.

        Example::

            async with client.stream("for i in range(3): print(i)") as chunks:
                async for chunk in chunks:
                    print(chunk.stream, chunk.data)
            print(chunks.result.value)
        """
        client, sid = self._client, self._session_id()
        deadline = client._deadline(timeout, self._default_timeout)
        command = client._execute(sid, code, deadline, stream=True)
        return AsyncExecStream(client, sid, command, deadline)

    async def create(
        self,
        target: str,
        /,
        *args: Any,
        **kwargs: Any,
    ) -> "AsyncRemoteObject":
        """Call a callable by dotted path and keep the result remotely, as a proxy.

        Uses the session's default timeout (keyword arguments all go to the callable).

        Args:
            target: Dotted path of a callable: ``collections.Counter``, a builtin, or
                a name defined in the session.
            *args: Positional arguments (values or remote objects).
            **kwargs: Keyword arguments (values or remote objects).

        Returns:
            An :class:`AsyncRemoteObject`, released by ``release()``, by leaving its
            ``async with`` block, when its session closes, or after it is
            garbage-collected.

        Raises:
            NotFound: No such module or attribute.
            ExecutionFailed: The call raised.

        Example::

            counter = await client.create("collections.Counter", "abracadabra")
            assert await counter.most_common(1) == [("a", 5)]
        """
        client, sid = self._client, self._session_id()
        deadline = client._deadline(None, self._default_timeout)
        command = client._create(sid, target, args, kwargs, deadline)
        value = client._value(await client._request(command, deadline), sid)
        if not isinstance(value, AsyncRemoteObject):
            raise InternalError(f"object.create answered {value!r}, not a handle")
        return value

    async def objects(self, *, timeout: float | None = None) -> list[Handle]:
        """List the session's live remote objects (handles), oldest first.

        Args:
            timeout: Deadline in seconds (default: the session's).

        Returns:
            One :class:`~beephost_protocol.Handle` (``id``, ``type``, ``repr``) each.

        Example::

            assert [h.type for h in await client.objects()] == ["collections.Counter"]
        """
        client, sid = self._client, self._session_id()
        deadline = client._deadline(timeout, self._default_timeout)
        result = await client._request(client._list_objects(sid, deadline), deadline)
        return client._handle_list(result)

    async def release(self, *objects: "AsyncRemoteObject | Handle | str") -> int:
        """Release remote objects in one request, so their memory can be freed.

        Args:
            *objects: Proxies, handles or handle ids of this session. Released ones
                and unknown ids are ignored, so this is safe to repeat.

        Returns:
            How many were live on the server.

        Example::

            await client.release(counter, other)
        """
        client, sid = self._client, self._session_id()
        ids: list[str] = []
        for obj in objects:
            if isinstance(obj, _base.ProxyBase):
                if client._forget(obj):
                    ids.append(obj._handle.id)
            else:
                ids.append(obj.id if isinstance(obj, Handle) else str(obj))
        if not ids:
            return 0
        deadline = client._deadline(None, self._default_timeout)
        result = await client._request(client._release(sid, ids, deadline), deadline)
        return client._released(result)

    async def info(self, *, timeout: float | None = None) -> SessionDescription:
        """Describe the session: interpreter, packages and counters.

        Args:
            timeout: Deadline in seconds (default: the session's).

        Returns:
            A :class:`SessionDescription`.

        Example::

            print((await client.info()).python_version)
        """
        client, sid = self._client, self._session_id()
        deadline = client._deadline(timeout, self._default_timeout)
        result = await client._request(client._info(sid, deadline), deadline)
        return client._description(result)

    async def interrupt(self) -> bool:
        """Interrupt the code the session is running (``KeyboardInterrupt`` in it).

        The interrupted call fails with :class:`Interrupted`; the session's state is
        kept. Call this from another task or thread than the one waiting.

        Returns:
            Whether running code was signalled (False if the session was idle).

        Example::

            await session.interrupt()
        """
        client = self._client
        command = client._interrupt(self._session_id())
        result = await client._request(command, client.timeout.request)
        return client._interrupted(result)


class AsyncClient(_base.BaseClient, _AsyncSessionOps, AsyncScoped):
    """A connection to one Beep Python Host backend, for asyncio code.

    The transport is chosen by the URL's scheme: ``unix:///path/pipe.sock`` (pipe),
    ``http://host:port`` / ``https://`` (HTTP), ``grpc://host:port`` (gRPC, with the
    ``beephost-client[grpc]`` extra). The calls of the client itself run in the
    ``default`` session; :meth:`session` gives one of your own. Connections are opened
    lazily and reopened after a broken connection (a restarted server).

    Args:
        url: The backend's URL; may be omitted when ``transport`` is given.
        token: The backend's token, if it has one.
        timeout: Default time limits: a :class:`Timeout`, or seconds for the deadline.
        transport: A transport to use instead of the URL's (e.g. ``MockTransport``).

    Raises:
        ValueError: The URL's scheme is not one of the table's.

    Example::

        async with beephost_client.AsyncClient("grpc://127.0.0.1:50051") as client:
            print(await client.evaluate("2 ** 100"))
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        timeout: Timeout | float = DEFAULT_TIMEOUT,
        transport: AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(timeout)
        if transport is None:
            if url is None:
                raise InvalidArgument("give a URL or a transport")
            transport = make_async_transport(url, token=token, timeout=self._timeout)
        self._transport = transport
        self._client = self
        self.url = url
        #: The files of the backend's workspace (upload, download, list, ...).
        self.files = AsyncFiles(self)
        # HTTP and gRPC: objects in `default` belong to the transport's lease, which
        # the server ends when nobody renews it (the client died without closing).
        self._lease_keeper = _lease.LeaseKeeper(
            transport, self._holds_default, self._wait(self._timeout.request)
        )

    def _session_id(self) -> str:
        return DEFAULT_SESSION

    def _holding_default(self) -> None:
        self._lease_keeper.start()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url or type(self._transport).__name__}>"

    # -- sessions ----------------------------------------------------------------------

    def session(
        self,
        *,
        ttl: float | None = None,
        timeout: float | None = None,
        session_id: str | None = None,
    ) -> "AsyncSession":
        """A new session (its own worker process and namespace), for ``async with``.

        The session is opened when the block is entered and closed when it is left.

        Args:
            ttl: Idle seconds before the server expires it (server default if None).
            timeout: Default deadline of the calls made through it.
            session_id: Attach to this existing session instead of opening one
                (leaving the block still closes it).

        Returns:
            An :class:`AsyncSession`, not yet open.

        Example::

            async with client.session() as session:
                await session.execute("x = 1")
        """
        return AsyncSession(self, session_id, ttl=ttl, timeout=timeout)

    async def open_session(
        self, *, ttl: float | None = None, timeout: float | None = None
    ) -> "AsyncSession":
        """Open a session now; close it with ``aclose()`` (or ``async with``).

        Args:
            ttl: Idle seconds before the server expires it (server default if None).
            timeout: Default deadline of the calls made through it.

        Returns:
            The open :class:`AsyncSession`.

        Raises:
            QuotaExceeded: The server has its maximum of sessions open.

        Example::

            session = await client.open_session(ttl=60)
        """
        return await self.session(ttl=ttl, timeout=timeout).open()

    async def sessions(self) -> list[str]:
        """Ids of the server's open sessions, ``default`` first.

        Example::

            assert "default" in await client.sessions()
        """
        result = await self._request(self._list_sessions(), self._timeout.request)
        return self._session_ids(result)

    async def keep_alive(self) -> None:
        """Reset the backend's idle clock, changing nothing else.

        A backend the controller started is stopped after its idle timeout without a
        request (health checks do not count): an app that holds a sandbox for a user
        who is reading, not typing, calls this now and then. Any other request resets
        the clock as well; this is the cheapest.

        Example::

            await client.keep_alive()
        """
        await self._request(self._list_sessions(), self._timeout.request)

    # -- lifecycle ---------------------------------------------------------------------

    async def aclose(self) -> None:
        """Release this client's remote objects and close its connections.

        Best effort: a server that is gone is not waited for.

        Example::

            await client.aclose()
        """
        if self._closed:
            return
        await self._lease_keeper.stop()
        deadline = self._timeout.grace
        wait = self._wait(deadline)
        commands: list[Command] = [
            *self._take_garbage(deadline),
            *self._take_live(deadline),
        ]
        if self._transport.lease is not None:
            # Whatever reached the server but not this client (a cancelled call's).
            commands.append(self._release_lease(self._transport.lease))
        for command in commands:
            with contextlib.suppress(BeepHostError):
                await self._transport.handle_async(command, timeout=wait)
        self._closed = True
        await self._transport.aclose()

    async def _leave(self) -> None:
        await self.aclose()

    # -- the one I/O path ----------------------------------------------------------------

    async def _request(self, command: Command, deadline: float) -> dict[str, Any]:
        self._check_open()
        await self._collect_garbage()
        attempt, wait = 0, self._wait(deadline)
        while True:
            try:
                return await self._transport.handle_async(command, timeout=wait)
            except BeepHostError as exc:
                if not _base.should_retry(command, exc, attempt):
                    raise
                logger.debug("retrying %s after %r", command.COMMAND, exc)
                attempt += 1

    async def _open_stream(self, command: Execute, deadline: float) -> AsyncStream:
        self._check_open()
        await self._collect_garbage()
        return self._transport.stream_async(command, timeout=self._wait(deadline))

    async def _collect_garbage(self) -> None:
        # Releases for proxies that were garbage-collected, sent from the caller's own
        # task or thread (never from the finalizer). A session that is gone took its
        # handles with it, so errors are ignored.
        deadline = self._timeout.request
        wait = self._wait(deadline)
        for command in self._take_garbage(deadline):
            with contextlib.suppress(BeepHostError):
                await self._transport.handle_async(command, timeout=wait)


class AsyncSession(_AsyncSessionOps, AsyncScoped):
    """A session of an :class:`AsyncClient`: its own worker process and namespace.

    Get one from :meth:`AsyncClient.session` (``async with``) or
    :meth:`AsyncClient.open_session`. It has the same operations as the client
    (``evaluate``, ``execute``, ``stream``, ``create``, ...), run in this session.
    """

    def __init__(
        self,
        client: AsyncClient,
        session_id: str | None,
        *,
        ttl: float | None,
        timeout: float | None,
    ) -> None:
        self._client = client
        self._id = session_id
        self._ttl = ttl
        self._default_timeout = timeout
        self._closed = False

    def _session_id(self) -> str:
        if self._id is None:
            raise UsageError("the session is not open: use `async with` or open()")
        if self._closed:
            raise UsageError(f"session {self._id!r} is closed")
        return self._id

    @property
    def id(self) -> str:
        """The session's id (once opened; it stays readable after closing).

        Raises:
            RuntimeError: The session was never opened.
        """
        if self._id is None:
            raise UsageError("the session is not open: use `async with` or open()")
        return self._id

    @property
    def ttl(self) -> float | None:
        """Idle seconds before expiry, as granted by the server."""
        return self._ttl

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self._id else "not open")
        return f"<{type(self).__name__} {self._id or '?'} {state}>"

    async def open(self) -> Self:
        """Open the session on the server (once); ``async with`` calls this.

        Returns:
            The session itself.

        Raises:
            QuotaExceeded: The server has its maximum of sessions open.
        """
        if self._id is None:
            client = self._client
            result = await client._request(
                client._open_session(self._ttl), client.timeout.request
            )
            self._id, self._ttl = client._session_opened(result)
        return self

    async def aclose(self) -> None:
        """Close the session: its worker stops, its remote objects are gone.

        A session that was already lost or expired counts as closed.
        """
        if self._closed or self._id is None:
            return
        client = self._client
        client._forget_session(self._id)
        self._closed = True
        command = client._close_session(self._id)
        with contextlib.suppress(NotFound, SessionLost):
            await client._request(command, client.timeout.request)

    async def __aenter__(self) -> Self:
        return await self.open()

    async def _leave(self) -> None:
        await self.aclose()


class AsyncRemoteObject(_base.ProxyBase, AsyncScoped):
    """A proxy of an object kept in a session (a handle).

    ``await proxy.name`` reads an attribute and ``await proxy.method(*args)`` calls a
    method, one round trip each; :meth:`get`, :meth:`set` and :meth:`call` are the
    explicit forms (use them for names starting with ``_`` or shadowed by these
    methods). Proxies are accepted as arguments anywhere a value is, in their own
    session. The object is released by :meth:`release`, by leaving ``async with``,
    when its session closes, or, after the proxy is garbage-collected, by the
    client's next request.
    """

    __slots__ = ()

    @property
    def handle(self) -> Handle:
        """The handle: ``id``, ``type`` (qualified class name) and ``repr``."""
        return self._handle

    @property
    def repr(self) -> str:
        """The object's ``repr()``, as the reply that made the proxy carried it.

        No round trip: an app can show the object at once. Cut to 240 characters
        (ending in ``...``); an object whose ``repr()`` raised shows as
        ``<TYPE object (repr failed)>``. ``str(proxy)`` is the same text.
        """
        return self._handle.repr

    @property
    def bundle(self) -> Output | None:
        """The object's rich representation, as the reply that made the proxy carried it.

        No round trip, like :attr:`repr`: an :class:`Output` (``.html``, ``.markdown``,
        ``.png``, ``.text``...) built as ``display()`` builds it, when the object has
        more than text/plain (a pandas DataFrame's HTML). ``None`` otherwise, and for
        proxies found inside a returned container (only a reply's own value carries
        one). A part over the display size limit is named in ``metadata["dropped"]``.
        """
        bundle = self._handle.bundle
        return None if bundle is None else output_of(bundle)

    def __str__(self) -> str:
        return self._handle.repr

    @property
    def session_id(self) -> str:
        """The id of the session the object lives in."""
        return self._sid

    @property
    def released(self) -> bool:
        """Whether the proxy was released (it can no longer be used)."""
        return self._released

    def __repr__(self) -> str:
        state = " released" if self._released else ""
        return f"<{type(self).__name__} {self._handle.type} {self._handle.repr}{state}>"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _sugar.attribute(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            _sugar.assign(self, name, value)

    async def get(self, name: str, *, timeout: float | None = None) -> Any:
        """Read an attribute (one round trip).

        Args:
            name: The attribute's name.
            timeout: Deadline in seconds (default: the client's).

        Returns:
            Its value; a bound method or other object comes back as a proxy.

        Raises:
            ExecutionFailed: ``AttributeError`` or anything a property raised.
            NotFound: The object was released.
        """
        client = self._client
        assert isinstance(client, AsyncClient)
        deadline = client._deadline(timeout, None)
        result = await client._request(client._get_attr(self, name, deadline), deadline)
        return client._value(result, self._sid)

    async def set(self, name: str, value: Any, *, timeout: float | None = None) -> None:
        """Assign an attribute (one round trip).

        Args:
            name: The attribute's name.
            value: The new value; a proxy assigns the object itself.
            timeout: Deadline in seconds (default: the client's).

        Raises:
            ExecutionFailed: The object refused the attribute.
        """
        client = self._client
        assert isinstance(client, AsyncClient)
        deadline = client._deadline(timeout, None)
        await client._request(client._set_attr(self, name, value, deadline), deadline)

    async def call(self, method: str | None, /, *args: Any, **kwargs: Any) -> Any:
        """Call a method of the object, or the object itself when ``method`` is None.

        One round trip, with the client's default deadline (keyword arguments all go
        to the method).

        Args:
            method: The method's name, or None to call the object.
            *args: Positional arguments (values or proxies).
            **kwargs: Keyword arguments (values or proxies).

        Returns:
            The return value (data, or a proxy).

        Raises:
            ExecutionFailed: The call raised.
        """
        client = self._client
        assert isinstance(client, AsyncClient)
        deadline = client._deadline(None, None)
        command = client._call(self, method, args, kwargs, deadline)
        return client._value(await client._request(command, deadline), self._sid)

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return await self.call(None, *args, **kwargs)

    async def release(self) -> None:
        """Release the object on the server now; later releases do nothing."""
        client = self._client
        assert isinstance(client, AsyncClient)
        if not client._forget(self):
            return
        deadline = client.timeout.request
        with contextlib.suppress(NotFound, SessionLost):
            await client._request(
                client._release(self._sid, [self._handle.id], deadline), deadline
            )

    async def _leave(self) -> None:
        await self.release()


class AsyncExecStream(AsyncScoped):
    """The output of a streamed execution: :class:`OutputChunk` and :class:`Output`.

    Iterate with ``async for`` inside ``async with``; :attr:`result` is set once the
    last chunk was read, its ``outputs`` holding the rich outputs streamed.
    """

    def __init__(
        self, client: AsyncClient, sid: str, command: Execute, deadline: float
    ) -> None:
        self._client = client
        self._sid = sid
        self._command = command
        self._deadline = deadline
        self._items: AsyncStream | None = None
        self._result: ExecResult | None = None
        self._outputs: list[Output] = []
        self._done = False

    @property
    def result(self) -> ExecResult:
        """The :class:`ExecResult` (``stdout``/``stderr`` empty: they were streamed).

        Raises:
            RuntimeError: The stream was not read to its end.
        """
        if self._result is None:
            raise UsageError("the stream has not been read to its end")
        return self._result

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> OutputChunk | Output:
        if self._done:
            raise StopAsyncIteration
        if self._items is None:
            self._items = await self._client._open_stream(self._command, self._deadline)
        try:
            item = await anext(self._items)
        except StopAsyncIteration:
            raise InternalError("the stream ended without a result") from None
        if isinstance(item, OutputChunk):
            return item
        if isinstance(item, Output):
            self._outputs.append(item)
            return item
        result = self._client._exec_result(item, self._sid)
        if self._outputs:  # streamed, so not in the result: gathered here
            outputs = self._outputs + result.outputs
            result = dataclasses.replace(result, outputs=outputs)
        self._result = result
        await self.aclose()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop reading; an unfinished request is abandoned."""
        self._done = True
        if self._items is not None:
            items, self._items = self._items, None
            await items.aclose()

    async def _leave(self) -> None:
        await self.aclose()


AsyncClient._proxy_type = AsyncRemoteObject
