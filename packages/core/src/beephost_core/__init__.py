"""Beep Python Host execution core: the one engine behind every backend.

The exports load on first use: a backend's health check imports ``activity`` without
paying for the executor (asyncio, pydantic, prometheus_client).
"""

import importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from beephost_core.config import ExecutorConfig, base_interpreter
    from beephost_core.executor import Executor
    from beephost_core.launch import WORKER_SCRIPT
    from beephost_core.metrics import CoreMetrics

__all__ = [
    "WORKER_SCRIPT",
    "CoreMetrics",
    "Executor",
    "ExecutorConfig",
    "base_interpreter",
]

_HOMES = {
    "WORKER_SCRIPT": "beephost_core.launch",
    "CoreMetrics": "beephost_core.metrics",
    "Executor": "beephost_core.executor",
    "ExecutorConfig": "beephost_core.config",
    "base_interpreter": "beephost_core.config",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
