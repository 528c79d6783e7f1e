"""Which file a worker runs: ``worker.py``'s cached bytecode when it may, else the source.

A script run by path is compiled on every start (about 20 ms for ``worker.py``, a
fifth of a spawn): CPython caches bytecode only for imported modules. But it runs a
``.pyc`` given as the script, and the installed package has one (``uv pip install
--compile-bytecode``). Running it is safe only when it is current (its header matches
the source) and the worker's interpreter is the server's own (whose magic number it
has): another interpreter would refuse it, so it then gets the source, as before.
"""

import functools
import importlib.util
import os
import sys

_HEADER = 16  # magic, flags, then mtime and size, or the source's hash
_HASH_BASED = 0b01


def program(python: str, source: str) -> str:
    """The file a worker under ``python`` should run for the script ``source``."""
    if _same_interpreter(python):
        cached = _current_bytecode(source)
        if cached is not None:
            return cached
    return source


@functools.cache
def _same_interpreter(python: str) -> bool:
    mine = {os.path.realpath(sys.executable)}
    base = getattr(sys, "_base_executable", None)
    if base:
        mine.add(os.path.realpath(base))
    return os.path.realpath(python) in mine


def _current_bytecode(source: str) -> str | None:
    """``source``'s cached bytecode, if it is this interpreter's and still current."""
    try:
        cached = importlib.util.cache_from_source(source)
        with open(cached, "rb") as file:
            header = file.read(_HEADER)
        stat = os.stat(source)
    except (OSError, NotImplementedError, ValueError):
        return None
    if len(header) < _HEADER or header[:4] != importlib.util.MAGIC_NUMBER:
        return None
    flags = int.from_bytes(header[4:8], "little")
    if flags & _HASH_BASED:
        try:
            with open(source, "rb") as file:
                data = file.read()
        except OSError:
            return None
        current = header[8:16] == importlib.util.source_hash(data)
    else:
        current = header[8:16] == _stamp(stat.st_mtime, stat.st_size)
    return cached if current else None


def _stamp(mtime: float, size: int) -> bytes:
    # As importlib writes it: both truncated to 32 bits, little-endian.
    mask = 0xFFFFFFFF
    return (int(mtime) & mask).to_bytes(4, "little") + (size & mask).to_bytes(
        4, "little"
    )
