"""Dataclasses' methods compiled ahead (beephost_core.dataclass_code): the recorded
code runs in place of compiling, a text not recorded is compiled, a foreign record is
ignored. Each side in a fresh interpreter, as an image's build and a server's start."""

import importlib.util
import json
import marshal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

MODULE = """
from dataclasses import dataclass, field

@dataclass(frozen=True, order=True)
class Point:
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list, compare=False)
"""

LATER = """
from dataclasses import dataclass

@dataclass
class Later:
    name: str
"""

SHOW = """
import dataclasses, json, sys
from pathlib import Path
from beephost_core import dataclass_code
used = dataclass_code.use(Path(sys.argv[1]))
import points
from points import Point
shown = {
    "texts": used.texts,
    "filename": Point.__init__.__code__.co_filename,
    "repr": repr(Point(1, tags=["a"])),
    "order": Point(1) < Point(2),
    "equal": Point(1) == Point(1, 0, ["b"]),
    "patched": "exec" in vars(dataclasses),
}
if len(sys.argv) > 2:
    import later
    shown["later"] = later.Later.__init__.__code__.co_filename
    shown["later_repr"] = repr(later.Later("n"))
shown["ran"], shown["compiled"] = used.ran, used.compiled
print(json.dumps(shown))
"""


@pytest.fixture
def modules(tmp_path: Path) -> Path:
    (tmp_path / "points.py").write_text(MODULE)
    (tmp_path / "later.py").write_text(LATER)
    return tmp_path


def _python(code: str, modules: Path, *args: str) -> str:
    ran = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={"PYTHONPATH": str(modules), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


def _record(modules: Path, record: Path) -> int:
    code = (
        "import sys; from pathlib import Path; from beephost_core import dataclass_code; "
        "print(dataclass_code.record(Path(sys.argv[1]), ['points']))"
    )
    return int(_python(code, modules, str(record)))


def _marked(record: Path) -> None:
    """The record's code compiled again under another file name, to be told apart."""
    magic = importlib.util.MAGIC_NUMBER
    codes = marshal.loads(record.read_bytes()[len(magic) :])
    marked = {
        text: compile(text, "<recorded>", "exec", dont_inherit=True) for text in codes
    }
    record.write_bytes(magic + marshal.dumps(marked))


def _shown(modules: Path, record: Path, *args: str) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(_python(SHOW, modules, str(record), *args))
    return shown


def test_the_recorded_code_runs_instead_of_a_compile(
    modules: Path, tmp_path: Path
) -> None:
    record = tmp_path / "code.marshal"
    count = _record(modules, record)
    assert count >= 4  # __init__, __repr__, __eq__, the order methods, __hash__...
    _marked(record)
    shown = _shown(modules, record)
    assert shown["texts"] == count
    assert shown["filename"] == "<recorded>"
    assert (shown["ran"], shown["compiled"]) == (count, 0)
    # The class behaves as dataclasses made it.
    assert shown["repr"] == "Point(x=1, y=0, tags=['a'])"
    assert shown["order"] is True
    assert shown["equal"] is True


def test_a_text_not_recorded_is_compiled_as_before(
    modules: Path, tmp_path: Path
) -> None:
    record = tmp_path / "code.marshal"
    count = _record(modules, record)
    shown = _shown(modules, record, "later")
    assert shown["later"] == "<string>"
    assert shown["later_repr"] == "Later(name='n')"
    assert shown["ran"] == count
    assert shown["compiled"] >= 2  # Later's __init__, __repr__, __eq__


@pytest.mark.parametrize(
    "content", [b"", b"\x00\x00\r\n" + marshal.dumps({}), b"garbage"]
)
def test_a_foreign_or_broken_record_changes_nothing(
    modules: Path, tmp_path: Path, content: bytes
) -> None:
    record = tmp_path / "code.marshal"
    record.write_bytes(content)
    shown = _shown(modules, record)
    assert (shown["texts"], shown["patched"]) == (0, False)
    assert shown["filename"] == "<string>"
    assert shown["repr"] == "Point(x=1, y=0, tags=['a'])"


def test_no_record_changes_nothing(modules: Path, tmp_path: Path) -> None:
    shown = _shown(modules, tmp_path / "missing.marshal")
    assert (shown["texts"], shown["patched"]) == (0, False)
