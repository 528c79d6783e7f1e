"""Drive the blocking SDK from async test code: every call runs in a worker thread.

The contract tests are written once, as async code (``await client.evaluate(...)``).
For the sync client, :func:`threaded` wraps the real ``Client`` (and what it returns:
sessions, remote objects, streams) so that each call runs the blocking method in an
anyio worker thread. Concurrency tests then really run the sync client from many
threads at once. Attribute sugar maps onto the sync client's own: ``await proxy.name``
runs ``proxy.name`` (a ``get_attr``) and ``await proxy.name(*args)`` runs
``proxy.name(*args)`` (get the bound method, then call it).
"""

import functools
from collections.abc import Callable, Iterator
from typing import Any

import anyio.to_thread

import beephost_client as bc

_WRAPPED = (bc.Client, bc.Session, bc.RemoteObject, bc.Files)


def _inside(convert: Callable[[Any], Any], value: Any) -> Any:
    """``convert`` applied to the items of a list, tuple or dict (keys too), else
    ``value`` itself."""
    if isinstance(value, list):
        return [convert(item) for item in value]
    if isinstance(value, tuple):
        return tuple(convert(item) for item in value)
    if isinstance(value, dict):
        return {convert(k): convert(v) for k, v in value.items()}
    return value


def threaded(value: Any) -> Any:
    """Wrap SDK objects (in containers too); plain values pass through."""
    if isinstance(value, _WRAPPED):
        return Threaded(value)
    if isinstance(value, bc.ExecStream):
        return ThreadedStream(value)
    return _inside(threaded, value)


def unwrap(value: Any) -> Any:
    if isinstance(value, Threaded | ThreadedStream):
        return value.wrapped
    return _inside(unwrap, value)


async def _run(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    call = functools.partial(function, *unwrap(args), **unwrap(kwargs))
    return threaded(await anyio.to_thread.run_sync(call))


class Threaded:
    """An async face on a sync Client, Session or RemoteObject."""

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped

    def __repr__(self) -> str:
        return f"threaded({self.wrapped!r})"

    def __getattr__(self, name: str) -> Any:
        cls = type(self.wrapped)
        member = getattr(cls, name, None)
        if member is None:
            if isinstance(self.wrapped, bc.RemoteObject):
                return _Attribute(self.wrapped, name)  # attribute sugar
            if name in vars(self.wrapped):  # client.files
                return threaded(getattr(self.wrapped, name))
            raise AttributeError(name)
        if isinstance(member, property):
            return getattr(self.wrapped, name)
        method = getattr(self.wrapped, name)
        if name in ("session", "stream"):  # no I/O: they return an object to enter
            return lambda *a, **k: threaded(method(*a, **k))
        if name == "iter_bytes":  # a generator: each step runs in a thread
            return lambda *a, **k: ThreadedIterator(method(*a, **k))
        return functools.partial(_run, method)

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return await _run(self.wrapped, *args, **kwargs)

    async def aclose(self) -> None:
        await _run(self.wrapped.close)

    async def __aenter__(self) -> "Threaded":
        await _run(self.wrapped.__enter__)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await _run(self.wrapped.__exit__, *exc_info)


class _Attribute:
    def __init__(self, proxy: bc.RemoteObject, name: str) -> None:
        self.proxy = proxy
        self.name = name

    def __await__(self) -> Any:
        return _run(getattr, self.proxy, self.name).__await__()

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        def call() -> Any:
            return getattr(self.proxy, self.name)(*args, **kwargs)

        return await _run(call)


class ThreadedStream:
    """An async face on a sync ExecStream."""

    def __init__(self, wrapped: bc.ExecStream) -> None:
        self.wrapped = wrapped

    @property
    def result(self) -> bc.ExecResult:
        return self.wrapped.result

    def __aiter__(self) -> "ThreadedStream":
        return self

    async def __anext__(self) -> bc.OutputChunk | bc.Output:
        chunk = await anyio.to_thread.run_sync(next, self.wrapped, None)
        if chunk is None:
            raise StopAsyncIteration
        assert isinstance(chunk, bc.OutputChunk | bc.Output)
        return chunk

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.wrapped.close)

    async def __aenter__(self) -> "ThreadedStream":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()


class ThreadedIterator:
    """An async face on a sync iterator (``files.iter_bytes``)."""

    def __init__(self, wrapped: Iterator[Any]) -> None:
        self.wrapped = wrapped

    def __aiter__(self) -> "ThreadedIterator":
        return self

    async def __anext__(self) -> Any:
        item = await anyio.to_thread.run_sync(next, self.wrapped, _END)
        if item is _END:
            raise StopAsyncIteration
        return item


_END = object()
