"""Workers run from worker.py's cached bytecode when it is current (no compile per spawn)."""

import py_compile
import shutil
from pathlib import Path

import pytest

from beephost_core import WORKER_SCRIPT, launch
from beephost_protocol import models
from beephost_protocol.errors import ExecutionFailed
from tests.integration.core.conftest import MakeExecutor

pytestmark = pytest.mark.anyio

MAIN_FILE = "__import__('sys').modules['__main__'].__file__"


@pytest.fixture
def worker_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of worker.py that the executor spawns (its bytecode is the test's)."""
    copy = tmp_path / "worker.py"
    shutil.copyfile(WORKER_SCRIPT, copy)
    monkeypatch.setattr(launch, "WORKER_SCRIPT", str(copy))
    return copy


async def test_a_worker_runs_from_current_bytecode(
    worker_copy: Path, make_executor: MakeExecutor
) -> None:
    cached = py_compile.compile(str(worker_copy), doraise=True)
    executor = await make_executor()
    result = await executor.run(models.Evaluate(expression=MAIN_FILE))
    assert result == {"value": cached}
    # Its frames are still told apart from user code's.
    with pytest.raises(ExecutionFailed) as caught:
        await executor.run(models.Execute(code="def f():\n    1 / 0\nf()"))
    traceback = caught.value.data["traceback"]
    assert "in f" in traceback
    assert "worker.py" not in traceback
    assert "Traceback (most recent call last)" in traceback


async def test_without_bytecode_a_worker_runs_the_source(
    worker_copy: Path, make_executor: MakeExecutor
) -> None:
    executor = await make_executor()
    result = await executor.run(models.Evaluate(expression=MAIN_FILE))
    assert result == {"value": str(worker_copy)}
