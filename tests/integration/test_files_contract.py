"""The files API through the SDK over every transport, sync and async (R17).

Each test runs for ``{pipe, http, grpc} x {sync, async}`` against the contract servers
(tests/integration/contract), whose workspaces hold at most WORKSPACE_QUOTA_BYTES. The
servers are shared by the session: each test works in a directory of its own and
removes it.
"""

import hashlib
import os
import secrets
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import beephost_client as bc
from tests.integration.contract.servers import WORKSPACE_QUOTA_BYTES

pytestmark = pytest.mark.anyio

MIB = 1 << 20
CLIENT_PEAK_LIMIT = 8 * MIB  # a transfer holds a few 1 MiB chunks, never the file


@pytest.fixture
async def folder(client: Any) -> AsyncIterator[str]:
    """A directory of the workspace for this test alone, removed afterwards."""
    name = f"t-{secrets.token_hex(4)}"
    await client.files.mkdir(name)
    yield name
    await client.files.remove(name, recursive=True)


def random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for start in range(0, size, MIB):
            chunk = os.urandom(min(MIB, size - start))
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def names_in(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_local_file_goes_in_and_back_whole(
    client: Any, folder: str, tmp_path: Path
) -> None:
    source = tmp_path / "source.bin"
    expected = random_file(source, 20 * MIB + 12345)
    seen: list[tuple[int, int | None]] = []
    info = await client.files.write(
        f"{folder}/in/data.bin", source, on_progress=lambda *p: seen.append(p)
    )
    assert (info.path, info.name, info.type, info.size) == (
        f"{folder}/in/data.bin",
        "data.bin",
        "file",
        20 * MIB + 12345,
    )
    assert seen[-1] == (info.size, info.size)
    code = f"__import__('hashlib').sha256(open('{folder}/in/data.bin', 'rb').read()).hexdigest()"
    assert await client.evaluate(code) == expected, "user code sees the same bytes"
    back = tmp_path / "back.bin"
    assert (
        await client.files.download(f"{folder}/in/data.bin", back)
    ).size == info.size
    assert sha256_of(back) == expected
    assert names_in(tmp_path) == {"source.bin", "back.bin"}, "no partial download"


async def test_bytes_text_and_ranges(client: Any, folder: str) -> None:
    await client.files.write(f"{folder}/notes.txt", "héllo")
    assert await client.files.read_text(f"{folder}/notes.txt") == "héllo"
    data = os.urandom(3 * MIB + 7)
    await client.files.write(f"{folder}/blob", data)
    assert await client.files.read(f"{folder}/blob") == data
    pieces = [
        piece
        async for piece in client.files.iter_bytes(
            f"{folder}/blob", offset=MIB - 3, length=MIB + 10
        )
    ]
    assert b"".join(pieces) == data[MIB - 3 : 2 * MIB + 7]
    past = client.files.iter_bytes(f"{folder}/blob", offset=len(data))
    assert [piece async for piece in past] == []
    await client.files.write(f"{folder}/empty", b"")
    assert await client.files.read(f"{folder}/empty") == b""


async def test_metadata_operations(client: Any, folder: str) -> None:
    assert (await client.files.mkdir(f"{folder}/a/b")).type == "directory"
    await client.files.write(f"{folder}/a/b/one", b"1")
    await client.files.write(f"{folder}/a/two", b"22")
    listing = await client.files.list(f"{folder}/a")
    assert [(i.name, i.type, i.size) for i in listing if i.type == "file"] == [
        ("two", "file", 2)
    ]
    assert [i.name for i in listing] == ["b", "two"]
    assert await client.files.exists(f"{folder}/a/b/one")
    assert not await client.files.exists(f"{folder}/nothing")
    with pytest.raises(bc.Conflict):
        await client.files.rename(f"{folder}/a/two", f"{folder}/a/b/one")
    moved = await client.files.rename(
        f"{folder}/a/two", f"{folder}/a/b/one", overwrite=True
    )
    assert (moved.path, moved.size) == (f"{folder}/a/b/one", 2)
    with pytest.raises(bc.Conflict):
        await client.files.write(f"{folder}/a/b/one", b"x", overwrite=False)
    with pytest.raises(bc.Conflict):
        await client.files.remove(f"{folder}/a")
    assert await client.files.remove(f"{folder}/a", recursive=True) == 3
    with pytest.raises(bc.NotFound):
        await client.files.stat(f"{folder}/a")
    usage = await client.files.usage()
    assert usage.quota == WORKSPACE_QUOTA_BYTES
    assert await client.evaluate("__import__('os').getcwd()") == usage.root


@pytest.mark.parametrize(
    "path", ["../outside", "/etc/passwd", "a/../../b", "link/secret", "link", "fifo"]
)
async def test_paths_out_of_the_workspace_are_refused(
    client: Any, folder: str, path: str
) -> None:
    await client.execute(
        f"import os\nos.symlink('/etc', '{folder}/link')\nos.mkfifo('{folder}/fifo')"
    )
    target = path if path.startswith(("/", "..", "a/")) else f"{folder}/{path}"
    with pytest.raises(bc.InvalidRequest):
        await client.files.read(target)
    if path in ("link", "fifo"):  # the name itself is in the workspace: never opened
        with pytest.raises(bc.Conflict):
            await client.files.write(target, b"x", overwrite=False)
    else:
        with pytest.raises(bc.InvalidRequest):
            await client.files.write(target.replace("secret", "planted"), b"x")
    assert "planted" not in names_in(Path("/etc"))


async def test_over_the_quota_nothing_is_left(
    client: Any, folder: str, tmp_path: Path
) -> None:
    with pytest.raises(bc.QuotaExceeded):  # size known: refused before any byte
        await client.files.write(f"{folder}/big", b"x" * (WORKSPACE_QUOTA_BYTES + 1))
    source = tmp_path / "big.bin"
    random_file(source, WORKSPACE_QUOTA_BYTES + MIB)
    with source.open("rb") as stream, pytest.raises(bc.QuotaExceeded):
        await client.files.write(f"{folder}/big", stream)  # size unknown: cut midway
    names = await client.evaluate(f"sorted(__import__('os').listdir('{folder}'))")
    assert names == [], "no partial or temporary file"
    assert (await client.files.usage()).used < WORKSPACE_QUOTA_BYTES


async def test_transfers_keep_the_clients_memory_flat(
    client: Any, folder: str, tmp_path: Path
) -> None:
    source, back = tmp_path / "source.bin", tmp_path / "back.bin"
    expected = random_file(source, 40 * MIB)
    tracemalloc.start()
    try:
        await client.files.write(f"{folder}/flat.bin", source)
        await client.files.download(f"{folder}/flat.bin", back)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sha256_of(back) == expected
    assert peak < CLIENT_PEAK_LIMIT, f"the client held {peak} bytes at once"


BAD_PATHS = {"empty": "", "too long": "a/" * 2049, "nul": "a\x00b"}


@pytest.mark.parametrize("path", BAD_PATHS.values(), ids=BAD_PATHS.keys())
async def test_a_path_the_protocol_refuses_is_a_typed_error(
    client: Any, folder: str, tmp_path: Path, path: str
) -> None:
    """Every operation, on every transport: InvalidArgument naming the argument,
    never pydantic's ValidationError."""
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "read": lambda: client.files.read(path),
        "write": lambda: client.files.write(path, b"x"),
        "stat": lambda: client.files.stat(path),
        "exists": lambda: client.files.exists(path),
        "list": lambda: client.files.list(path),
        "mkdir": lambda: client.files.mkdir(path),
        "remove": lambda: client.files.remove(path),
        "download": lambda: client.files.download(path, tmp_path / "d"),
        "rename from": lambda: client.files.rename(path, f"{folder}/x"),
        "rename to": lambda: client.files.rename(f"{folder}/x", path),
    }
    await client.files.write(f"{folder}/x", b"x")
    raised: dict[str, str] = {}
    for name, call in calls.items():
        try:
            await call()
        except Exception as exc:
            raised[name] = f"{type(exc).__name__}: {exc}"
    assert {name: text.split(":")[0] for name, text in raised.items()} == dict.fromkeys(
        calls, "InvalidArgument"
    )
    assert all("must be a non-empty str" in text for text in raised.values()), raised
    with pytest.raises(bc.InvalidArgument):
        [piece async for piece in client.files.iter_bytes(path)]
    assert await client.files.read(f"{folder}/x") == b"x"


async def test_a_download_goes_to_a_str_path(
    client: Any, folder: str, tmp_path: Path
) -> None:
    await client.files.write(f"{folder}/s.txt", "to a str")
    destination = str(tmp_path / "s.txt")
    assert (await client.files.download(f"{folder}/s.txt", destination)).size == 8
    assert sha256_of(Path(destination)) == hashlib.sha256(b"to a str").hexdigest()
    assert names_in(tmp_path) == {"s.txt"}, "no partial download"
