"""Generate the sync client from the async one: ``_async/_client.py`` -> ``_sync/_client.py``.

    uv run python packages/client/scripts/unasync.py           # write
    uv run python packages/client/scripts/unasync.py --check   # exit 1 if stale

Token rules in the style of httpcore's ``scripts/unasync.py``: ``async``/``await``
dropped, ``Async*`` names and ``a*`` dunders mapped to their sync twins. The few
sentences that differ between the twins are replaced whole (SENTENCES), and each must
be found, so that an edit cannot silently drop one. A unit test runs ``--check``.
"""

import re
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "beephost_client"
SOURCE = PACKAGE / "_async" / "_client.py"
TARGET = PACKAGE / "_sync" / "_client.py"

HEADER = '''"""The blocking client: Client, its sessions, remote objects and streams.

GENERATED from ``_async/_client.py`` by ``packages/client/scripts/unasync.py``: do not
edit. Every call blocks its thread; a Client may be shared by threads (each call uses a
connection of its own).
"""
'''

SENTENCES = {
    "``await proxy.name`` reads an attribute and ``await proxy.method(*args)`` calls a\n"
    "    method, one round trip each;": "``proxy.name`` reads an attribute (one round trip), ``proxy.name = value``\n"
    "    assigns one, and ``proxy.method(*args)`` calls a method in two round trips (get\n"
    "    the bound method, then call it);",
    "A connection to one Beep Python Host backend, for asyncio code.": "A connection to one Beep Python Host backend, for blocking code.",
}

TOKENS = [
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
    (r"\b_AsyncSessionOps\b", "_SessionOps"),
    (r"\bAsyncClient\b", "Client"),
    (r"\bAsyncSession\b", "Session"),
    (r"\bAsyncRemoteObject\b", "RemoteObject"),
    (r"\bAsyncExecStream\b", "ExecStream"),
    (r"\bAsyncBaseTransport\b", "BaseTransport"),
    (r"\bAsyncStream\b", "SyncStream"),
    (r"\bmake_async_transport\b", "make_transport"),
    (r"\bhandle_async\b", "handle"),
    (r"\bstream_async\b", "stream"),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\b__aiter__\b", "__iter__"),
    (r"\b__anext__\b", "__next__"),
    (r"\bStopAsyncIteration\b", "StopIteration"),
    (r"\banext\b", "next"),
    (r"\baclose\b", "close"),
    (r"\baconnect\b", "connect"),
    (r"\bbeephost_client\._async\b", "beephost_client._sync"),
]


def generate(source: str) -> str:
    for old, new in SENTENCES.items():
        if old not in source:
            raise SystemExit(f"unasync: sentence not found in {SOURCE.name}: {old!r}")
        source = source.replace(old, new)
    # asyncio-only lint suppressions have nothing to suppress in the sync twin.
    source = re.sub(r"(?m)^# ruff: noqa: ASYNC\d+.*\n\n", "", source)
    for pattern, replacement in TOKENS:
        source = re.sub(pattern, replacement, source)
    # Replace the module docstring (the first triple-quoted block) with the header.
    end = source.index('"""', 3) + 3
    return HEADER + source[end:].lstrip("\n").join(["\n", ""])


def main(argv: list[str]) -> int:
    generated = generate(SOURCE.read_text())
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != generated:
            sys.stderr.write(f"{TARGET} is stale: run {Path(__file__).name}\n")
            return 1
        return 0
    TARGET.write_text(generated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
