"""Attribute syntax on async proxies: ``await proxy.name`` and ``await proxy.method()``.

Hand-written (not generated): attribute access cannot do I/O in asyncio, so it returns
a lazy :class:`AsyncRemoteAttribute`; the sync twin is ``_sync/_sugar.py``.
"""

from collections.abc import Awaitable, Generator
from typing import Any, Protocol

from beephost_client._exceptions import InvalidArgument


class _Proxy(Protocol):
    def get(self, name: str, *, timeout: float | None = None) -> Awaitable[Any]: ...

    def call(
        self, method: str | None, /, *args: Any, **kwargs: Any
    ) -> Awaitable[Any]: ...


class AsyncRemoteAttribute:
    """``proxy.name`` on an async proxy: await it to read the attribute, call it to
    call the method (one round trip either way).

    Example::

        label = await counter.label          # object.get_attr
        top = await counter.most_common(2)   # object.call, method "most_common"
    """

    __slots__ = ("_name", "_proxy")

    def __init__(self, proxy: _Proxy, name: str) -> None:
        self._proxy = proxy
        self._name = name

    def __await__(self) -> Generator[Any, None, Any]:
        return self._proxy.get(self._name).__await__()

    def __call__(self, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return self._proxy.call(self._name, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<AsyncRemoteAttribute {self._name!r} of {self._proxy!r}>"


def attribute(proxy: _Proxy, name: str) -> AsyncRemoteAttribute:
    return AsyncRemoteAttribute(proxy, name)


def assign(proxy: _Proxy, name: str, value: Any) -> None:
    raise InvalidArgument(
        f"cannot assign {name!r} on an async proxy without awaiting: "
        f"use `await proxy.set({name!r}, value)`"
    )
