"""Beep Python Host execution core: the one engine behind every backend."""

from beephost_core._process import WORKER_SCRIPT
from beephost_core.config import ExecutorConfig, base_interpreter
from beephost_core.executor import Executor
from beephost_core.metrics import CoreMetrics

__all__ = [
    "WORKER_SCRIPT",
    "CoreMetrics",
    "Executor",
    "ExecutorConfig",
    "base_interpreter",
]
