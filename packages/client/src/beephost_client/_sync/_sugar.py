"""Attribute syntax on sync proxies: ``proxy.name`` reads, ``proxy.name = v`` assigns.

Hand-written twin of ``_async/_sugar.py``. Reading is eager (one round trip): data
comes back by value, anything else as a proxy, so ``proxy.method(1)`` costs two round
trips (get the bound method, then call it); ``proxy.call("method", 1)`` costs one.
"""

from typing import Any, Protocol


class _Proxy(Protocol):
    def get(self, name: str, *, timeout: float | None = None) -> Any: ...

    def set(self, name: str, value: Any, *, timeout: float | None = None) -> None: ...


def attribute(proxy: _Proxy, name: str) -> Any:
    return proxy.get(name)


def assign(proxy: _Proxy, name: str, value: Any) -> None:
    proxy.set(name, value)
