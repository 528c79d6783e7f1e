"""The session worker script loaded as a module, to test its pure logic in-process."""

import importlib.util
from pathlib import Path
from types import ModuleType

from beephost_core import WORKER_SCRIPT


def load_worker(name: str = "beephost_worker_under_test") -> ModuleType:
    """A fresh copy of the worker script, not registered in ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(name, Path(WORKER_SCRIPT))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
