"""A download is one whole version of a file, or a typed error: never a mix.

User code rewrites a multi-MiB file in a loop (a thread of its session) while the test
downloads it, over ``{pipe, http, grpc} x {sync, async}``. Each version is one byte
repeated, so a download that mixes versions, or whose length is not the size the
same call reports, is seen at once.
"""

import secrets
from pathlib import Path
from typing import Any

import pytest

import beephost_client as bc

pytestmark = pytest.mark.anyio

MIB = 1 << 20
SIZE = 4 * MIB
DOWNLOADS = 12

# A daemon thread of the worker writes versions until the stop file appears (or
# 30 s pass: a test that fails never leaves it running for long). "replace" renames a
# new file over the name; "rewrite" truncates the file and writes it again in pieces,
# so each moment's content is a prefix of one version (one byte repeated, maybe empty).
# (A same-size write over the old bytes, already under way when a read begins, changes
# neither size nor timestamps afterwards: no reader can see it; docs/users/api.md.)
WRITER = """
import os, threading, time
def _write(path, stop, mode):
    version, deadline = 0, time.monotonic() + 30
    while not os.path.exists(stop) and time.monotonic() < deadline:
        version = version % 250 + 1
        data = bytes([version]) * {size}
        if mode == "replace":
            with open(path + ".tmp", "wb") as out:
                out.write(data)
            os.replace(path + ".tmp", path)
            continue
        with open(path, "wb") as out:
            for start in range(0, len(data), 1 << 20):
                out.write(data[start : start + (1 << 20)])
                out.flush()
import sys
sys.beep_writer = threading.Thread(
    target=_write, args=({path!r}, {stop!r}, {mode!r}), daemon=True
)
sys.beep_writer.start()
"""


def one_version(data: bytes, writer: str) -> bool:
    """Whether ``data`` is the file as it was at one moment."""
    whole = len(data) == SIZE or (writer == "rewrite" and len(data) < SIZE)
    return whole and data == data[:1] * len(data)


@pytest.mark.parametrize("writer", ["replace", "rewrite"])
async def test_a_download_is_one_whole_version_or_a_typed_error(
    client: Any, transport: str, writer: str, tmp_path: Path
) -> None:
    folder = f"t-{secrets.token_hex(4)}"
    path, stop = f"{folder}/data.bin", f"{folder}/stop"
    await client.files.write(path, b"\0" * SIZE)
    await client.execute(WRITER.format(size=SIZE, path=path, stop=stop, mode=writer))
    # A stream cut after its headers (HTTP has no way to send an error then) is a
    # lost connection; anything else the server refuses is a conflict.
    typed: tuple[type[Exception], ...] = (
        (bc.Conflict, bc.ConnectionLost) if transport == "http" else (bc.Conflict,)
    )
    whole = refused = 0
    try:
        for n in range(DOWNLOADS):
            target = tmp_path / f"copy-{n}.bin"
            try:
                if n % 2:
                    data = await client.files.read(path)
                    info_size = len(data)
                else:
                    info_size = (await client.files.download(path, target)).size
                    data = target.read_bytes()
            except typed:
                refused += 1
                continue
            assert one_version(data, writer), (
                f"download {n}: {len(data)} bytes of versions "
                f"{sorted(set(data[:: 64 * 1024]))}, not one whole version"
            )
            assert info_size == len(data), "the size reported is the size copied"
            whole += 1
    finally:
        await client.files.write(stop, b"")
        await client.execute("__import__('sys').beep_writer.join(10)")
        await client.files.remove(folder, recursive=True)
    assert whole + refused == DOWNLOADS
    if writer == "replace":  # the open file is never the one renamed over it
        assert refused == 0, f"{refused} of {DOWNLOADS} downloads refused"
