"""Dataclasses' generated methods, compiled when a server's image is built.

CPython compiles the methods ``@dataclass`` adds (``__init__``, ``__repr__``,
``__eq__``...) from generated source text whenever such a class is created: an
``exec`` of that text in ``dataclasses``. A backend server creates 67 dataclasses as it
boots (40 of them pydantic's, 13 annotated_types'): about 50 ms of a cold start's CPU
in a container limited to one CPU (issue 33), spent again at every start.

An image's build records the compiled code of every such text while it imports the
server (:func:`record`, ``python -m beephost_core.dataclass_code MODULE...``), into the
server's venv. A server calls :func:`use` before its first import: ``dataclasses`` then
runs the recorded code of a text it would compile, the code ``exec`` would have made of
it (the same text, file name and flags; this module has no ``__future__`` import, as
``dataclasses`` has none, so ``exec`` compiles a text here as it did there). A text not
recorded (another version of a library) is compiled as before.
"""

import dataclasses
import importlib
import importlib.util
import marshal
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any

FILE_NAME = "dataclass-code.marshal"

#: The code of a text, or None: then the text is compiled.
Lookup = Callable[[str], CodeType | None]


def recorded_path() -> Path:
    """Where a venv keeps its recorded code: at its root (copied with it)."""
    return Path(sys.prefix) / FILE_NAME


@dataclass(slots=True)
class RecordedCode:
    """What :func:`use` loaded, and how often dataclasses used it since."""

    texts: int
    ran: int = 0  # texts whose recorded code ran
    compiled: int = 0  # texts compiled: none was recorded


def use(path: Path | None = None) -> RecordedCode:
    """Let dataclasses run the code recorded at ``path`` (default:
    :func:`recorded_path`). Nothing changes (``texts`` is 0) when there is no such
    file, or another interpreter recorded it (its magic number)."""
    try:
        data = (path or recorded_path()).read_bytes()
    except OSError:
        return RecordedCode(texts=0)
    magic = importlib.util.MAGIC_NUMBER
    if not data.startswith(magic):
        return RecordedCode(texts=0)
    try:
        codes = marshal.loads(data[len(magic) :])
    except (EOFError, ValueError, TypeError):
        return RecordedCode(texts=0)
    if not isinstance(codes, dict):
        return RecordedCode(texts=0)
    recorded = RecordedCode(texts=len(codes))

    def lookup(text: str) -> CodeType | None:
        code: CodeType | None = codes.get(text)
        if code is None:
            recorded.compiled += 1
        else:
            recorded.ran += 1
        return code

    _run_in_dataclasses(lookup)
    return recorded


def record(path: Path, modules: Iterable[str]) -> int:
    """Import ``modules`` and write the code of every dataclass text compiled meanwhile
    to ``path``; returns how many. Run it in a fresh interpreter: a module imported
    before has made its dataclasses already."""
    codes: dict[str, CodeType] = {}

    def compile_and_keep(text: str) -> CodeType:
        code = compile(text, "<string>", "exec", dont_inherit=True)
        codes[text] = code
        return code

    _run_in_dataclasses(compile_and_keep)
    for module in modules:
        importlib.import_module(module)
    path.write_bytes(importlib.util.MAGIC_NUMBER + marshal.dumps(codes))
    return len(codes)


def _run_in_dataclasses(lookup: Lookup) -> None:
    """Make ``dataclasses``' ``exec`` run ``lookup``'s code for a text it has."""

    def exec_recorded(
        source: Any,
        globals_: dict[str, Any] | None = None,
        locals_: dict[str, Any] | None = None,
    ) -> None:
        code = lookup(source) if isinstance(source, str) else None
        exec(source if code is None else code, globals_, locals_)

    # dataclasses calls exec by its global name: a module global comes before builtins.
    vars(dataclasses)["exec"] = exec_recorded


if __name__ == "__main__":
    count = record(recorded_path(), sys.argv[1:])
    print(f"recorded the code of {count} dataclass methods in {recorded_path()}")  # noqa: T201
