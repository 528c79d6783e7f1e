"""uvicorn's ``Config`` and ``Server`` without the rest of the package, for a faster start.

``import uvicorn`` runs the package's ``__init__``, which imports its command line
(click) and its reloaders (multiprocessing): over half of uvicorn's import and about a
fifth of everything the server imports before it answers (``python -X importtime``). The
server needs neither. So the package module is made from its spec without running its
``__init__``; the first read of any other name of it (``uvicorn.run``,
``uvicorn.__version__``) runs the ``__init__`` then, so that other code in the process
that uses ``import uvicorn`` still sees the whole package.

Websockets are imported on a connection's first upgrade (``websocket_protocol``), not
at start: no route of the backend takes one (FastAPI refuses it), and the
``websockets`` import is a tenth of the start.
"""

import asyncio
import importlib.util
import sys
from types import ModuleType
from typing import Any


def _bare_package() -> ModuleType:
    loaded = sys.modules.get("uvicorn")
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("uvicorn")
    if spec is None or spec.loader is None:
        raise ImportError("uvicorn is not installed")
    loader = spec.loader
    package = importlib.util.module_from_spec(spec)

    def complete(name: str) -> Any:
        # Another name of the package: run its __init__ (once) and look again.
        del package.__getattr__
        loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = complete  # type: ignore[method-assign]  # PEP 562
    sys.modules["uvicorn"] = package
    return package


_package = _bare_package()

from uvicorn.config import Config  # noqa: E402  # after the bare package is in place
from uvicorn.server import Server  # noqa: E402

# What uvicorn's own modules import from the package (uvicorn/lifespan/on.py: Config).
_package.__dict__.setdefault("Config", Config)
_package.__dict__.setdefault("Server", Server)


def websocket_protocol(**kwargs: Any) -> asyncio.Protocol:
    """uvicorn's ``ws="auto"`` protocol, imported on the first websocket upgrade."""
    from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

    if AutoWebSocketsProtocol is None:
        raise RuntimeError("no websocket library is installed")
    return AutoWebSocketsProtocol(**kwargs)


__all__ = ["Config", "Server", "websocket_protocol"]
