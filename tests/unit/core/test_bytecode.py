"""Which file a worker runs: the cached bytecode only when it is current and ours."""

import os
import py_compile
import sys
from pathlib import Path

import pytest

from beephost_core import _bytecode


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "worker.py"
    path.write_text("print('hello')\n")
    return path


def _compile(script: Path, mode: py_compile.PycInvalidationMode) -> str:
    return str(py_compile.compile(str(script), doraise=True, invalidation_mode=mode))


def test_without_bytecode_the_source_runs(script: Path) -> None:
    assert _bytecode.program(sys.executable, str(script)) == str(script)


@pytest.mark.parametrize("mode", list(py_compile.PycInvalidationMode))
def test_current_bytecode_runs(
    script: Path, mode: py_compile.PycInvalidationMode
) -> None:
    cached = _compile(script, mode)
    assert _bytecode.program(sys.executable, str(script)) == cached


def test_a_changed_source_runs_itself(script: Path) -> None:
    _compile(script, py_compile.PycInvalidationMode.TIMESTAMP)
    script.write_text("print('changed, and longer')\n")
    assert _bytecode.program(sys.executable, str(script)) == str(script)


def test_a_changed_source_of_a_hash_based_pyc_runs_itself(script: Path) -> None:
    _compile(script, py_compile.PycInvalidationMode.CHECKED_HASH)
    stat = script.stat()
    script.write_text("print('HELLO')\n")  # same size
    os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert _bytecode.program(sys.executable, str(script)) == str(script)


def test_another_interpreter_runs_the_source(script: Path, tmp_path: Path) -> None:
    _compile(script, py_compile.PycInvalidationMode.TIMESTAMP)
    other = tmp_path / "python9.99"
    other.write_text("")
    assert _bytecode.program(str(other), str(script)) == str(script)


def test_a_venv_of_this_interpreter_runs_the_bytecode(
    script: Path, env_python: str
) -> None:
    cached = _compile(script, py_compile.PycInvalidationMode.TIMESTAMP)
    assert _bytecode.program(env_python, str(script)) == cached


def test_another_magic_number_runs_the_source(script: Path) -> None:
    cached = Path(_compile(script, py_compile.PycInvalidationMode.TIMESTAMP))
    data = bytearray(cached.read_bytes())
    data[0] ^= 0xFF
    cached.write_bytes(bytes(data))
    assert _bytecode.program(sys.executable, str(script)) == str(script)
