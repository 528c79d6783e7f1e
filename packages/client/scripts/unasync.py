"""Generate the sync clients and transports from the async ones: ``_async/`` -> ``_sync/``.

The clients (``_client.py``: Client; ``_connect.py``: connect; ``_controller.py``:
ControllerClient, with its parts by resource ``_controller_*.py``; ``_scoped.py``:
their ``with`` blocks) and the transports in ``_transports/_async`` (``http.py``, ``pipe.py``,
``controller_http.py``).
Below them, the blocking and asyncio I/O (``_httpio``, ``_pipeio``, ``_pool``) is
written by hand, and so is gRPC (``grpc`` and ``grpc.aio`` differ in more than I/O).

    uv run python packages/client/scripts/unasync.py           # write
    uv run python packages/client/scripts/unasync.py --check   # exit 1 if stale

Token rules in the style of httpcore's ``scripts/unasync.py``: ``async``/``await``
dropped, ``Async*`` names and ``a*`` dunders mapped to their sync twins. The few
sentences that differ between the twins are replaced whole (SENTENCES), and each must
be found, so that an edit cannot silently drop one. A unit test runs ``--check``.
"""

import re
import subprocess
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

CONTROLLER_HEADER = '''"""The blocking controller client: ControllerClient, runtimes to backends.

GENERATED from ``_async/_controller.py`` by ``packages/client/scripts/unasync.py``: do
not edit. Every call blocks its thread; a ControllerClient may be shared by threads
(each call uses a connection of its own).
"""
'''

SCOPED_HEADER = '''"""``with`` for the blocking client's objects: the block ends what the object holds.

GENERATED from ``_async/_scoped.py`` by ``packages/client/scripts/unasync.py``: do not
edit (the docstrings there describe both).
"""
'''

FILES_HEADER = '''"""The backend's workspace from the blocking client: ``client.files``.

GENERATED from ``_async/_files.py`` by ``packages/client/scripts/unasync.py``: do not
edit (the docstrings there describe both).
"""
'''

CONNECT_HEADER = '''"""``connect``: a blocking client for a URL, in one call.

GENERATED from ``_async/_connect.py`` by ``packages/client/scripts/unasync.py``: do not
edit (the docstring there describes both).
"""
'''

CONTROLLER_SENTENCES = {
    "A client of the controller's REST API, for asyncio code.": "A blocking client of the controller's REST API; threads may share it.",
}

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
    # Private halves of a class (_AsyncSessionOps, _AsyncJobCalls, ...).
    (r"\b_Async([A-Z]\w*)\b", r"_\1"),
    (r"\bAsyncClient\b", "Client"),
    (r"\bAsyncScoped\b", "Scoped"),
    (r"\bAsyncFiles\b", "Files"),
    (r"\bupload_async\b", "upload"),
    (r"\bdownload_async\b", "download"),
    (r"\bAsyncConnection\b", "Connection"),
    (r"\bAsyncPool\b", "Pool"),
    (r"\bAsyncHTTPTransport\b", "HTTPTransport"),
    (r"\bAsyncPipeTransport\b", "PipeTransport"),
    (r"\bAsyncControllerClient\b", "ControllerClient"),
    (r"\bAsyncHTTPControllerTransport\b", "HTTPControllerTransport"),
    (r"\bAsyncControllerTransport\b", "ControllerTransport"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bAsyncIterable\b", "Iterable"),
    (r"\baread\b", "read"),
    (r"\baiter_bytes\b", "iter_bytes"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"(?m)^import asyncio\n", ""),
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
    (r"\b_transports\._async\b", "_transports._sync"),
]


def generate(
    source: str,
    header: str = HEADER,
    sentences: dict[str, str] = SENTENCES,
    name: str = SOURCE.name,
) -> str:
    for old, new in sentences.items():
        if old not in source:
            raise SystemExit(f"unasync: sentence not found in {name}: {old!r}")
        source = source.replace(old, new)
    # asyncio-only lint suppressions have nothing to suppress in the sync twin.
    source = re.sub(r"(?m)^# ruff: noqa: ASYNC\d+.*\n\n", "", source)
    for pattern, replacement in TOKENS:
        source = re.sub(pattern, replacement, source)
    # Replace the module docstring (the first triple-quoted block) with the header.
    end = source.index('"""', 3) + 3
    return header + source[end:].lstrip("\n").join(["\n", ""])


def formatted(source: str, target: Path) -> str:
    """``source`` as ``ruff format`` leaves it: a dropped ``await`` may let lines join."""
    ruff = [sys.executable, "-m", "ruff"]
    stdin = ["--stdin-filename", str(target), "-"]
    # Renamed imports may need sorting again (isort's rules), then the layout.
    for command in (
        [*ruff, "check", "--select", "I", "--fix", "--exit-zero"],
        [*ruff, "format"],
    ):
        source = subprocess.run(
            [*command, *stdin], input=source, capture_output=True, text=True, check=True
        ).stdout
    return source


def _transport_header(source: str, name: str) -> str:
    return f'''"""{name}: the blocking twin of the asyncio transport in ``{source}``.

GENERATED from ``_transports/_async/{source}`` by ``packages/client/scripts/unasync.py``:
do not edit (the docstrings there describe both).
"""
'''


def _part_header(part: str, calls: str) -> str:
    return f'''"""The blocking controller client's {calls}.

GENERATED from ``_async/_controller_{part}.py`` by ``packages/client/scripts/unasync.py``:
do not edit (part of ControllerClient; the docstrings there describe both).
"""
'''


# ControllerClient's parts, by resource (each a class it inherits from).
CONTROLLER_PARTS = {
    "base": "plumbing: send, read JSON",
    "environments": "runtime and environment calls",
    "jobs": "job calls",
    "backends": "backend calls",
    "secrets": "stored-secret calls",
}

TRANSPORTS = PACKAGE / "_transports"

# (source, target, header, sentences) of each generated file.
FILES = [
    (SOURCE, TARGET, HEADER, SENTENCES),
    (
        PACKAGE / "_async" / "_controller.py",
        PACKAGE / "_sync" / "_controller.py",
        CONTROLLER_HEADER,
        CONTROLLER_SENTENCES,
    ),
    *(
        (
            PACKAGE / "_async" / f"_controller_{part}.py",
            PACKAGE / "_sync" / f"_controller_{part}.py",
            _part_header(part, calls),
            {},
        )
        for part, calls in CONTROLLER_PARTS.items()
    ),
    (
        PACKAGE / "_async" / "_connect.py",
        PACKAGE / "_sync" / "_connect.py",
        CONNECT_HEADER,
        {", for asyncio code;": ", for blocking code;"},
    ),
    (
        PACKAGE / "_async" / "_scoped.py",
        PACKAGE / "_sync" / "_scoped.py",
        SCOPED_HEADER,
        {},
    ),
    (
        PACKAGE / "_async" / "_files.py",
        PACKAGE / "_sync" / "_files.py",
        FILES_HEADER,
        {"for asyncio code.": "for blocking code."},
    ),
    (
        TRANSPORTS / "_async" / "http.py",
        TRANSPORTS / "_sync" / "http.py",
        _transport_header("http.py", "HTTPTransport"),
        {"Asyncio transport for": "Blocking transport for"},
    ),
    (
        TRANSPORTS / "_async" / "pipe.py",
        TRANSPORTS / "_sync" / "pipe.py",
        _transport_header("pipe.py", "PipeTransport"),
        {"Asyncio transport for": "Blocking transport for"},
    ),
    (
        TRANSPORTS / "_async" / "controller_http.py",
        TRANSPORTS / "_sync" / "controller_http.py",
        _transport_header("controller_http.py", "HTTPControllerTransport"),
        {},
    ),
]


def main(argv: list[str]) -> int:
    stale = 0
    for source, target, header, sentences in FILES:
        generated = formatted(
            generate(source.read_text(), header, sentences, source.name), target
        )
        if "--check" not in argv:
            target.write_text(generated)
        elif not target.exists() or target.read_text() != generated:
            sys.stderr.write(f"{target} is stale: run {Path(__file__).name}\n")
            stale = 1
    return stale


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
