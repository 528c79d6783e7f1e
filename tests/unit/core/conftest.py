"""The worker script as a module and one of its sessions, for the pure-logic tests."""

from types import ModuleType
from typing import Any

import pytest

from tests.unit.core.worker_module import load_worker


@pytest.fixture(scope="module")
def worker() -> ModuleType:
    # One copy per test module: a module's tests share it, other modules do not.
    return load_worker()


@pytest.fixture
def session(worker: ModuleType) -> Any:
    return worker.Session({"max_handles": 3}, channel=None)
